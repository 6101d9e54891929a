"""Names that identify the resource and everything the operator owns."""

API_GROUP = "aidbox.io"
API_VERSION = "v1alpha1"
KIND = "AidboxCluster"
PLURAL = "aidboxclusters"
SINGULAR = "aidboxcluster"
SHORT_NAME = "abx"

FIELD_MANAGER = "aidbox-operator"

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

# Set on an existing object (value: the AidboxCluster's name) to let that cluster take it over;
# without it the operator never changes an object it did not create.
ADOPT_ANNOTATION = "aidbox.io/adopt"

# Suffix of the generated keys Secret; cluster names may not end with it, so that no cluster's
# children can be named like another cluster's keys Secret.
AUTH_KEYS_SUFFIX = "-auth-keys"

# "true" stops the operator from changing the cluster's children (status is still reported).
PAUSED_ANNOTATION = "aidbox.io/paused"

# Longest cluster name whose derived names (Service, pods, "-auth-keys" Secret) still fit in
# a 63-character DNS label.
MAX_NAME_LENGTH = 45

# Aidbox runs several replicas side by side only from release 2208 (seed document).
MIN_HA_VERSION = (22, 8)
