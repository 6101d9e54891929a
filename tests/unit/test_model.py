from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from aidbox_operator.cli import crd_yaml
from aidbox_operator.model import AidboxClusterSpec, Condition, parse_image_version
from aidbox_operator.model.crd import build_crd
from aidbox_operator.model.status import merge_conditions

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("image", "tag", "release"),
    [
        ("healthsamurai/aidboxone:2409", "2409", (24, 9, 0)),
        ("healthsamurai/aidboxone:2409.1", "2409.1", (24, 9, 1)),
        ("healthsamurai/aidboxone:2207", "2207", (22, 7, 0)),
        ("healthsamurai/multibox:2402-lts", "2402-lts", (24, 2, 0)),
        ("healthsamurai/aidboxone:2510-rc", "2510-rc", (25, 10, 0)),
        ("healthsamurai/aidboxone:latest", "latest", None),
        ("healthsamurai/aidboxone:edge", "edge", None),
        ("healthsamurai/aidboxone", "latest", None),
        ("registry.local:5000/aidbox/aidboxone:2208", "2208", (22, 8, 0)),
        ("registry.local:5000/aidboxone", "latest", None),
        ("healthsamurai/aidboxone@sha256:" + "a" * 64, None, None),
        ("healthsamurai/aidboxone:9913", "9913", None),  # month 13 is no release
    ],
)
def test_parse_image_version(
    image: str, tag: str | None, release: tuple[int, int, int] | None
) -> None:
    version = parse_image_version(image)
    assert version.tag == tag
    assert version.release == release


def test_version_ordering() -> None:
    assert parse_image_version("healthsamurai/aidboxone:2207").older_than(22, 8)
    assert not parse_image_version("healthsamurai/aidboxone:2208").older_than(22, 8)
    assert not parse_image_version("healthsamurai/aidboxone:latest").older_than(22, 8)


def test_spec_defaults() -> None:
    spec = AidboxClusterSpec()
    assert spec.image == "healthsamurai/aidboxone:latest"
    assert spec.replicas == 2 and spec.port == 8080
    assert spec.config_map_name("x") == "x" and spec.secret_name("x") == "x"


@pytest.mark.parametrize(
    "bad",
    [
        {"replicas": -1},
        {"port": 0},
        {"port": 70000},
        {"image": ""},
        {"imagePullPolicy": "Sometimes"},
        {"replicaz": 2},
    ],
)
def test_spec_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AidboxClusterSpec.model_validate(bad)


def test_crd_file_is_generated_from_model() -> None:
    path = REPO / "crds" / "aidboxcluster.yaml"
    assert path.read_text() == crd_yaml(), "run `aidbox-operator crd -o crds/aidboxcluster.yaml`"


def _walk(node: object, path: str = "") -> list[tuple[str, dict[str, object]]]:
    found: list[tuple[str, dict[str, object]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}[{i}]")
    return found


def test_crd_schema_is_structural() -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = json.dumps(schema)
    assert "$ref" not in text and '"title"' not in text and '"null"' not in text
    for path, node in _walk(schema["properties"]["spec"]):
        if "properties" in node and "type" in node:
            for name, sub in node["properties"].items():  # type: ignore[attr-defined]
                assert "description" in sub, f"{path}.{name} has no description"


def test_crd_has_scale_and_status_subresources() -> None:
    version = build_crd()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready",
        "Phase",
        "Version",
        "URL",
        "Image",
        "Age",
    ]


def _cond(status: str, stamp: str) -> Condition:
    return Condition(type="Ready", status=status, reason="R", last_transition_time=stamp)  # type: ignore[arg-type]


def test_merge_conditions_keeps_transition_time_while_status_holds() -> None:
    before = [_cond("True", "t0")]
    assert merge_conditions(before, [_cond("True", "")], "t1")[0].last_transition_time == "t0"
    assert merge_conditions(before, [_cond("False", "")], "t1")[0].last_transition_time == "t1"


def test_readme_field_reference_is_generated() -> None:
    from aidbox_operator.model.reference import field_reference

    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- reference:start -->\n", 1)[1].split("<!-- reference:end -->", 1)[0]
    assert block == field_reference(), "regenerate the README's field reference"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {
                "topologySpreadConstraints": [
                    {"maxskew": 1, "topologyKey": "z", "whenUnsatisfiable": "ScheduleAnyway"}
                ]
            },
            "topologySpreadConstraints[0]: unknown field 'maxskew'",
        ),
        (
            {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "z",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabel": {"a": "b"}},
                    }
                ]
            },
            "topologySpreadConstraints[0].labelSelector: unknown field 'matchLabel'",
        ),
        (
            {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "kee": "k"}}}]},
            "valueFrom.secretKeyRef: unknown field 'kee'",
        ),
        (
            # Elements of a list inside a free-form object are checked too.
            {
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "z",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchExpressions": [{"key": "a", "operater": "In"}]},
                    }
                ]
            },
            "labelSelector.matchExpressions[0]: unknown field 'operater'",
        ),
    ],
)
def test_free_form_fields_are_checked_against_kubernetes_types(
    spec: dict[str, object], expected: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        AidboxClusterSpec.model_validate(spec)


def test_optional_objects_stay_absent_instead_of_defaulting_to_empty() -> None:
    """The API server would fill in `database: {}` for every cluster, and the CRD's own rules
    (host or cloudNativePG) refuse that default: the CRD itself would not install."""
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for name in ("ingress", "httpRoute", "database", "license", "initBundle"):
        assert "default" not in spec["properties"][name], name
    assert spec["properties"]["podDisruptionBudget"]["default"] == {}
