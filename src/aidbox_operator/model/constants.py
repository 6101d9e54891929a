"""Names that identify the resource and everything the operator owns."""

API_GROUP = "aidbox.io"
API_VERSION = "v1alpha1"
KIND = "AidboxCluster"
PLURAL = "aidboxclusters"
SINGULAR = "aidboxcluster"
SHORT_NAME = "abx"

FIELD_MANAGER = "aidbox-operator"

# The Aidbox container in every pod (the seed HA document's name); sidecars and init
# containers may not take it.
CONTAINER_NAME = "main"

# Volumes the operator adds to the pods itself (render/deployment.py says when and why); a
# user's volume may not take these names, even while the operator adds none of them, so that
# turning readOnlyRootFilesystem on never makes two volumes of one name.
TMP_VOLUME = "aidbox-tmp"
INIT_BUNDLE_VOLUME = "aidbox-init-bundle"
OPERATOR_VOLUMES = (TMP_VOLUME, INIT_BUNDLE_VOLUME)

# Label keys follow the app.kubernetes.io conventions; NAME_LABEL and INSTANCE_LABEL form
# the selector, which must never change once a Deployment exists (selectors are immutable).
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
COMPONENT_LABEL = "app.kubernetes.io/component"
VERSION_LABEL = "app.kubernetes.io/version"
APP_NAME = "aidbox"
MANAGED_BY = "aidbox-operator"

# Hash of what the operator last applied to a child; a change means the child needs applying.
APPLIED_HASH_ANNOTATION = "aidbox.io/applied-hash"
# Hash of the referenced ConfigMap/Secret data, on the pod template, so a change rolls the pods.
CONFIG_HASH_ANNOTATION = "aidbox.io/config-hash"

# On a Deployment (not its pod template) while it rolls for a change nobody asked for (the
# operator's own rendering changed): such rollouts are paced across the fleet, and this lets a
# restarted operator count the ones under way.
OPERATOR_ROLLOUT_ANNOTATION = "aidbox.io/operator-rollout"

# Set on an existing object (value: the AidboxCluster's name) to let that cluster take it over;
# without it the operator never changes an object it did not create.
ADOPT_ANNOTATION = "aidbox.io/adopt"

# Suffix of the generated keys Secret; cluster names may not end with it, so that no cluster's
# children can be named like another cluster's keys Secret.
AUTH_KEYS_SUFFIX = "-auth-keys"

# Names the one older release (e.g. "2409.2") the cluster may go back to although a newer one
# has been Ready against its database; any other downgrade stays refused.
ALLOW_DOWNGRADE_ANNOTATION = "aidbox.io/allow-downgrade-to"

# "true" stops the operator from changing the cluster's children (status is still reported).
PAUSED_ANNOTATION = "aidbox.io/paused"

# A rolling restart the user asked for (`kubectl aidbox restart` sets it to the UTC time): on
# the AidboxCluster, copied to the pod template as RESTARTED_AT_ANNOTATION, so a new value
# replaces every pod once, at the Deployment's own pace. Not in the spec, so a GitOps tool
# re-applying the manifest neither removes it nor restarts anything again.
RESTART_ANNOTATION = "aidbox.io/restart"
RESTARTED_AT_ANNOTATION = "aidbox.io/restarted-at"

# Longest cluster name whose derived names (Service, pods, "-auth-keys" Secret) still fit in
# a 63-character DNS label.
MAX_NAME_LENGTH = 45

# Aidbox runs several replicas side by side only from release 2208 (seed document).
MIN_HA_VERSION = (22, 8)
