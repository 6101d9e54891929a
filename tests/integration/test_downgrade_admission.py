"""The downgrade policy of deploy/base on a real API server.

A change of an AidboxCluster's spec.image to an Aidbox release older than
status.versionRecord.newestReady is refused at admission unless the annotation
aidbox.io/allow-downgrade-to names exactly that release; every other update passes, and so does
every write of the status subresource.

No operator runs here: the tests write status.versionRecord through the status subresource
themselves, in dg-* namespaces that no operator watches. The policy and its binding are
deploy/base's files with three changes that keep them to this module: a name suffix on both, the
binding's policyName following it, and a binding limited to the module's namespace
(matchResources.namespaceSelector), so that no other test on the same API server meets them.
The policy's expressions and failurePolicy (Fail) are the files' own: every accepted case below
also shows that no expression failed on that input (a failing expression would refuse it), and
every refused case checks the exact message of the validation.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from helpers import wait_for
from kube_helpers import (
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    apply,
    cluster_manifest,
    get_cluster,
    namespace_lifetime,
)

BASE = REPO / "deploy" / "base"
ANNOTATION = "aidbox.io/allow-downgrade-to"
IMAGE = "healthsamurai/aidboxone"
DIGEST = "sha256:" + "0123456789abcdef" * 4


def _shipped() -> tuple[dict[str, Any], dict[str, Any]]:
    policy = yaml.safe_load((BASE / "downgrade-policy.yaml").read_text())
    binding = yaml.safe_load((BASE / "downgrade-policy-binding.yaml").read_text())
    return policy, binding


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(exc.body)


def _expected(policy: str, wanted: str, newest: str) -> str:
    return (
        f"ValidatingAdmissionPolicy '{policy}' with binding '{policy}' denied request: "
        f"spec.image asks for Aidbox {wanted}, older than {newest}, the newest release that has "
        "been Ready against this cluster's database; Aidbox has no downgrade path. To run it "
        f'anyway set the annotation {ANNOTATION}: "{wanted}"'
    )


@dataclass
class Installed:
    """deploy/base's policy and binding, in force in one namespace only."""

    api: Any
    namespace: str
    name: str

    @classmethod
    def install(cls, api: Any, namespace: str) -> Installed:
        policy, binding = _shipped()
        name = f"{policy['metadata']['name']}-{secrets.token_hex(3)}"
        policy, binding = copy.deepcopy(policy), copy.deepcopy(binding)
        policy["metadata"]["name"] = name
        binding["metadata"]["name"] = name
        binding["spec"]["policyName"] = name
        assert "matchResources" not in binding["spec"], "the shipped binding matches everywhere"
        binding["spec"]["matchResources"] = {
            "namespaceSelector": {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "In",
                        "values": [namespace],
                    }
                ]
            }
        }
        apply(api, policy)
        apply(api, binding)
        return cls(api, namespace, name)

    def delete_binding(self) -> None:
        client.AdmissionregistrationV1Api(self.api).delete_validating_admission_policy_binding(
            self.name
        )

    def uninstall(self) -> None:
        admission = client.AdmissionregistrationV1Api(self.api)
        deletes = (
            admission.delete_validating_admission_policy_binding,
            admission.delete_validating_admission_policy,
        )
        for delete in deletes:
            try:
                delete(self.name)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def refused(self, exc: ApiException) -> bool:
        """Whether this is a refusal by this policy (not by the CRD's schema or anything else)."""
        return exc.status == 403 and f"ValidatingAdmissionPolicy '{self.name}'" in _message(exc)


# -- objects and writes ------------------------------------------------------------------------


def _image(ref: str) -> str:
    """`2510.2` -> healthsamurai/aidboxone:2510.2, `@sha256:...` -> healthsamurai/aidboxone@...;
    a reference with a '/' is taken as it is."""
    if "/" in ref:
        return ref
    return IMAGE + ref if ref.startswith("@") else f"{IMAGE}:{ref}"


def _create(
    api: Any,
    namespace: str,
    name: str,
    image: str,
    record: str | dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A cluster running `image`; `record` (newestReady, or the whole versionRecord) is written
    through the status subresource, as the operator does."""
    body = cluster_manifest(name, namespace, image=_image(image))
    if annotations:
        body["metadata"]["annotations"] = annotations
    custom = client.CustomObjectsApi(api)
    made: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body
    )
    if record is None:
        return made
    version_record = record if isinstance(record, dict) else {"newestReady": record}
    written = _write_status(api, namespace, name, {"versionRecord": version_record})
    # The CRD's status schema must keep it (an unknown field would be pruned silently); the
    # schema's defaults fill in the record's other fields.
    kept = written["status"]["versionRecord"]
    assert {k: kept.get(k) for k in version_record} == version_record, written["status"]
    return written


def _write_status(
    api: Any, namespace: str, name: str, status: dict[str, Any], **rest: Any
) -> dict[str, Any]:
    written: dict[str, Any] = client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status, **rest}
    )
    return written


def _patch(api: Any, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """A merge patch of the main resource (what `kubectl patch --type=merge` sends)."""
    patched: dict[str, Any] = client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, body
    )
    return patched


def _set_image(
    api: Any, namespace: str, name: str, image: str, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"spec": {"image": _image(image)}}
    if annotations is not None:
        body["metadata"] = {"annotations": annotations}
    return _patch(api, namespace, name, body)


def _refusal(policy: Installed, write: Callable[[], object]) -> str | None:
    """None when the write is accepted, else the API server's message for this policy's refusal
    (any other error fails the test)."""
    try:
        write()
    except ApiException as exc:
        if policy.refused(exc):
            return _message(exc)
        raise
    return None


def _wait_in_force(api: Any, policy: Installed, probe: str) -> None:
    """Policies and bindings reach admission through informers: poll with a known-bad update
    (2510.2 -> 2409.2 against a record of 2510.2) until it is refused. An accepted attempt is
    undone (back to 2510.2, never older) so the next attempt changes the image again."""
    _create(api, policy.namespace, probe, "2510.2", record="2510.2")

    def refused_now() -> bool:
        if _refusal(policy, lambda: _set_image(api, policy.namespace, probe, "2409.2")):
            return True
        _set_image(api, policy.namespace, probe, "2510.2")
        return False

    wait_for(refused_now, timeout=60, interval=0.2, message=f"policy {policy.name} in force")


# -- fixtures -------------------------------------------------------------------------------------


@contextmanager
def _namespace(api: Any, prefix: str) -> Iterator[str]:
    yield from namespace_lifetime(api, f"{prefix}-{secrets.token_hex(3)}")


@pytest.fixture(scope="module")
def namespace(api_client: Any) -> Iterator[str]:
    yield from namespace_lifetime(api_client, f"dg-{secrets.token_hex(4)}")


@pytest.fixture(scope="module")
def policy(crd: None, api_client: Any, namespace: str) -> Iterator[Installed]:
    installed = Installed.install(api_client, namespace)
    try:
        _wait_in_force(api_client, installed, "probe")
        yield installed
    finally:
        installed.uninstall()


# -- the cases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    record: str | dict[str, Any] | None  # newestReady (or the whole versionRecord); None: none
    start: str  # the image (or tag) the cluster is created with
    target: str  # the image (or tag) the update asks for
    annotations: dict[str, str] | None = None  # set in the same update
    refused: tuple[str, str] | None = None  # (wanted, newest) named in the refusal


REFUSED = [
    Case("older-release", "2510.2", "2510.2", "2409.2", refused=("2409.2", "2510.2")),
    Case("older-minor", "2510.2", "2510.2", "2510.1", refused=("2510.1", "2510.2")),
    Case("minor-9-below-10", "2510.10", "2510.10", "2510.9", refused=("2510.9", "2510.10")),
    Case("record-yymm-alone", "2510", "2510.2", "2509.9", refused=("2509.9", "2510")),
    Case(
        "registry-port-and-digest",
        "2510.2",
        "2510.2",
        f"registry.example:5000/team/aidboxone:2409.1@{DIGEST}",
        refused=("2409.1", "2510.2"),
    ),
    Case(
        "annotation-names-another-release",
        "2510.2",
        "2510.2",
        "2409.2",
        annotations={ANNOTATION: "2409.1"},
        refused=("2409.2", "2510.2"),
    ),
    Case(
        "annotation-empty",
        "2510.2",
        "2510.2",
        "2409.2",
        annotations={ANNOTATION: ""},
        refused=("2409.2", "2510.2"),
    ),
    Case(
        "annotation-not-exact",
        "2510.2",
        "2510.2",
        "2409.2",
        annotations={ANNOTATION: "2409.02"},
        refused=("2409.2", "2510.2"),
    ),
    # Minors of any length compare as numbers, without converting them to int (no overflow).
    Case(
        "record-minor-beyond-int64",
        "2510.99999999999999999999999",
        "2510.2",
        "2510.100",
        refused=("2510.100", "2510.99999999999999999999999"),
    ),
    Case(
        "record-minor-leading-zeros", "2510.010", "2510.2", "2510.9", refused=("2510.9", "2510.010")
    ),
]

ACCEPTED = [
    Case("newer-minor", "2510.2", "2510.2", "2510.3"),
    Case("newer-month", "2510.2", "2510.2", "2511.1"),
    Case("newer-year", "2510.2", "2510.2", "2601.0"),
    Case("minor-10-above-9", "2510.9", "2510.9", "2510.10"),
    Case("same-release-other-registry", "2510.2", "2510.2", "registry.example/aidboxone:2510.2"),
    Case("channel-latest", "2510.2", "2510.2", "latest"),
    Case("channel-edge", "2510.2", "2510.2", "edge"),
    Case("channel-stable", "2510.2", "2510.2", "stable"),
    Case("moving-yymm", "2510.2", "2510.2", "2409"),
    Case("suffix-lts", "2510.2", "2510.2", "2409-lts"),
    Case("suffix-rc", "2510.2", "2510.2", "2409.2-rc"),
    Case("digest-only", "2510.2", "2510.2", f"@{DIGEST}"),
    Case("registry-port-no-tag", "2510.2", "2510.2", "registry.example:5000/team/aidboxone"),
    Case("empty-tag", "2510.2", "2510.2", "healthsamurai/aidboxone:"),
    Case("no-month-13", "2510.2", "2510.2", "2413.1"),
    Case("annotation-names-it", "2510.2", "2510.2", "2409.2", annotations={ANNOTATION: "2409.2"}),
    Case("no-status", None, "2510.2", "2409.2"),
    Case("record-blank", "", "2510.2", "2409.2"),
    Case("record-garbage", "garbage", "2510.2", "2409.2"),
    Case("record-three-parts", "2510.2.1", "2510.2", "2409.2"),
    Case("record-prefixed", "v2510.2", "2510.2", "2409.2"),
    Case("record-channel", "latest", "2510.2", "2409.2"),
    Case("record-yymm-same-month-minor-0", "2510", "2510.2", "2510.0"),
    Case("record-minor-leading-zeros-equal", "2510.010", "2510.2", "2510.10"),
    Case("minor-beyond-int64", "2510.2", "2510.2", "2510.99999999999999999999999"),
]


@pytest.mark.parametrize("case", REFUSED + ACCEPTED, ids=lambda c: c.id)
def test_image_change(api_client: Any, policy: Installed, case: Case) -> None:
    ns = policy.namespace
    name = f"c-{(REFUSED + ACCEPTED).index(case)}"
    before = _create(api_client, ns, name, case.start, record=case.record)
    refusal = _refusal(
        policy, lambda: _set_image(api_client, ns, name, case.target, case.annotations)
    )
    after = get_cluster(api_client, name, ns)
    if case.refused is None:
        assert refusal is None, refusal
        assert after["spec"]["image"] == _image(case.target)
    else:
        assert refusal is not None, f"{case.start} -> {case.target} accepted"
        assert refusal.endswith(_expected(policy.name, *case.refused)), refusal
        assert after["spec"]["image"] == before["spec"]["image"]
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_setting_the_annotation_after_a_refusal_lets_the_same_change_through(
    api_client: Any, policy: Installed
) -> None:
    ns = policy.namespace
    _create(api_client, ns, "retry", "2510.2", record="2510.2")
    assert _refusal(policy, lambda: _set_image(api_client, ns, "retry", "2409.2"))
    _patch(api_client, ns, "retry", {"metadata": {"annotations": {ANNOTATION: "2409.2"}}})
    assert _refusal(policy, lambda: _set_image(api_client, ns, "retry", "2409.2")) is None
    # Further down needs the annotation to name that release instead.
    refusal = _refusal(policy, lambda: _set_image(api_client, ns, "retry", "2409.1"))
    assert refusal is not None and refusal.endswith(_expected(policy.name, "2409.1", "2510.2"))


def test_edits_that_keep_the_image_pass_while_it_names_an_older_release(
    api_client: Any, policy: Installed
) -> None:
    """Only a change of spec.image is judged: labels, annotations (the allowance removed too),
    replicas, the scale subresource, and the removal of a finalizer from a cluster being deleted
    stay possible on a cluster that runs an older release than its record (e.g. allowed earlier
    by the annotation)."""
    ns = policy.namespace
    _create(api_client, ns, "held", "2409.2", record="2510.2", annotations={ANNOTATION: "2409.2"})
    edits: list[dict[str, Any]] = [
        {"metadata": {"labels": {"team": "fhir"}}},
        {"metadata": {"annotations": {ANNOTATION: None}}},
        {"spec": {"replicas": 3}},
    ]
    for edit in edits:
        assert _refusal(policy, lambda e=edit: _patch(api_client, ns, "held", e)) is None, edit
    custom = client.CustomObjectsApi(api_client)
    custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, ns, PLURAL, "held", {"spec": {"replicas": 4}}
    )
    body = get_cluster(api_client, "held", ns)
    assert body["spec"]["image"] == _image("2409.2") and body["spec"]["replicas"] == 4
    assert ANNOTATION not in (body["metadata"].get("annotations") or {})
    # The image itself, though, cannot move to another older release now.
    refusal = _refusal(policy, lambda: _set_image(api_client, ns, "held", "2409.1"))
    assert refusal is not None and refusal.endswith(_expected(policy.name, "2409.1", "2510.2"))
    # Deletion: the last update before the object goes removes a finalizer.
    _patch(api_client, ns, "held", {"metadata": {"finalizers": ["example.com/hold"]}})
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "held")
    assert get_cluster(api_client, "held", ns)["metadata"]["deletionTimestamp"]
    assert (
        _refusal(policy, lambda: _patch(api_client, ns, "held", {"metadata": {"finalizers": None}}))
        is None
    )

    def gone() -> bool:
        try:
            get_cluster(api_client, "held", ns)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=30, message="the cluster deleted once its finalizer was removed")


def test_status_writes_are_never_judged(api_client: Any, policy: Installed) -> None:
    """The binding matches `aidboxclusters` only: the operator's status writes pass whatever
    spec.image names (here a release older than every record written)."""
    ns = policy.namespace
    _create(api_client, ns, "status", "2409.2")
    for newest in ("2510.2", "2511.1", "2510", "garbage"):
        written = _write_status(
            api_client, ns, "status", {"versionRecord": {"newestReady": newest}}
        )
        assert written["status"]["versionRecord"]["newestReady"] == newest
    # A spec in a status write is ignored by the API server, and is not judged either.
    written = _write_status(
        api_client,
        ns,
        "status",
        {"versionRecord": {"newestReady": "2601.1"}},
        spec={"image": _image("2301.1")},
    )
    assert written["spec"]["image"] == _image("2409.2")
    assert written["status"]["versionRecord"]["newestReady"] == "2601.1"


def test_status_sent_with_a_main_resource_update_does_not_count(
    api_client: Any, policy: Installed
) -> None:
    """The main resource ignores status: a request cannot lower the record it is judged by, nor
    invent one."""
    ns = policy.namespace
    _create(api_client, ns, "forged", "2510.2", record="2510.2")
    refusal = _refusal(
        policy,
        lambda: _patch(
            api_client,
            ns,
            "forged",
            {
                "spec": {"image": _image("2409.2")},
                "status": {"versionRecord": {"newestReady": "2401.1"}},
            },
        ),
    )
    assert refusal is not None and refusal.endswith(_expected(policy.name, "2409.2", "2510.2"))
    _create(api_client, ns, "invented", "2510.2")
    body = _patch(
        api_client,
        ns,
        "invented",
        {
            "spec": {"image": _image("2409.2")},
            "status": {"versionRecord": {"newestReady": "2510.2"}},
        },
    )
    assert body["spec"]["image"] == _image("2409.2")
    assert "versionRecord" not in (body.get("status") or {})


def test_object_status_on_a_main_resource_update_is_the_stored_status(
    api_client: Any, crd: None
) -> None:
    """What the comment in deploy/base/downgrade-policy.yaml says, shown with a probe policy
    that refuses any request whose `object.status` differs from `oldObject.status`: a main
    resource update carrying another status passes (by patch and by PUT), so admission saw the
    stored status; a status subresource write is refused, so the probe does see a difference
    when there is one."""
    with _namespace(api_client, "dg-probe") as ns:
        name = f"probe-status-{secrets.token_hex(3)}"
        same = "has(object.status) == has(oldObject.status)"
        probe = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [GROUP],
                            "apiVersions": [VERSION],
                            "operations": ["UPDATE"],
                            "resources": [PLURAL, f"{PLURAL}/status"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": "!has(object.metadata.labels)"
                        " || !('probe-refuse' in object.metadata.labels)",
                        "message": "probe: refused on request",
                    },
                    {
                        "expression": f"{same} && (!has(object.status)"
                        " || object.status == oldObject.status)",
                        "message": "probe: object.status is not the stored status",
                    },
                ],
            },
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": ns},
                    }
                },
            },
        }
        admission = client.AdmissionregistrationV1Api(api_client)
        # Made before the probe: its status write (the record) would be refused once the probe
        # is in force, and a policy takes force a moment after it is applied.
        _create(api_client, ns, "a", "2510.2", record="2510.2")
        apply(api_client, probe)
        apply(api_client, binding)
        try:

            def probe_refuses() -> bool:
                try:
                    _patch(api_client, ns, "a", {"metadata": {"labels": {"probe-refuse": "1"}}})
                except ApiException as exc:
                    return "probe: refused on request" in _message(exc)
                _patch(api_client, ns, "a", {"metadata": {"labels": {"probe-refuse": None}}})
                return False

            wait_for(probe_refuses, timeout=60, message=f"probe policy {name} in force")
            forged = {"versionRecord": {"newestReady": "forged"}}
            body = _patch(api_client, ns, "a", {"spec": {"replicas": 3}, "status": forged})
            assert body["spec"]["replicas"] == 3
            body["spec"]["replicas"] = 4
            body["status"] = {"versionRecord": {"newestReady": "put"}}
            custom = client.CustomObjectsApi(api_client)
            body = custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "a", body)
            assert body["spec"]["replicas"] == 4
            assert body["status"]["versionRecord"]["newestReady"] == "2510.2"
            with pytest.raises(ApiException) as refused:
                _write_status(api_client, ns, "a", forged)
            assert "probe: object.status is not the stored status" in _message(refused.value)
        finally:
            admission.delete_validating_admission_policy_binding(name)
            admission.delete_validating_admission_policy(name)


def test_without_the_binding_the_downgrade_is_accepted(api_client: Any, crd: None) -> None:
    """The refusal comes from the binding being in force: the same case passes once the binding
    is deleted (the policy itself stays). Its own namespace and copy, so the module's stay."""
    with _namespace(api_client, "dg-unbound") as ns:
        installed = Installed.install(api_client, ns)
        try:
            _wait_in_force(api_client, installed, "probe")
            _create(api_client, ns, "down", "2510.2", record="2510.2")

            def downgrade() -> None:
                _set_image(api_client, ns, "down", "2409.2")

            refusal = _refusal(installed, downgrade)
            assert refusal is not None
            assert refusal.endswith(_expected(installed.name, "2409.2", "2510.2"))
            installed.delete_binding()

            def accepted() -> bool:
                return _refusal(installed, downgrade) is None

            wait_for(accepted, timeout=60, message="the downgrade accepted without the binding")
            body = get_cluster(api_client, "down", ns)
            assert body["spec"]["image"] == _image("2409.2")
            assert body["status"]["versionRecord"]["newestReady"] == "2510.2"
        finally:
            installed.uninstall()


def test_the_policy_type_checks_against_the_crd(api_client: Any, policy: Installed) -> None:
    """The API server type-checks the expressions against the CRD's schema and reports
    problems in status.typeChecking (they would not stop the policy from being created)."""
    admission = client.AdmissionregistrationV1Api(api_client)

    def checked() -> Any:
        got = admission.read_validating_admission_policy(policy.name)
        status = got.status
        if status is None or status.observed_generation != got.metadata.generation:
            return None
        return status.type_checking

    type_checking = wait_for(checked, timeout=30, message="the policy type-checked")
    assert not type_checking.expression_warnings, type_checking.expression_warnings


def test_shipped_policy_matches_updates_of_the_main_resource_only() -> None:
    policy, binding = _shipped()
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [
        {
            "apiGroups": ["aidbox.io"],
            "apiVersions": ["v1alpha1"],
            "operations": ["UPDATE"],
            "resources": ["aidboxclusters"],
        }
    ]
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
