"""Merge patches that remove what the new object no longer has."""

from __future__ import annotations

from typing import Any

from aidbox_operator.runtime.patch import merge_patch


def _apply(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies a merge patch."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _apply(result[key], value)
        else:
            result[key] = value
    return result


def test_merge_patch_removes_keys_at_every_depth_and_replaces_lists() -> None:
    old = {
        "phase": "Ready",
        "runningVersions": {"2510.1": 3, "2510.2": 1},
        "upgrade": {"from": "2409.2", "to": "2510.1"},
        "conditions": [{"type": "Ready"}, {"type": "Stalled"}],
    }
    new = {"phase": "Ready", "runningVersions": {"2510.1": 3}, "conditions": [{"type": "Ready"}]}
    patch = merge_patch(old, new)
    assert patch["runningVersions"] == {"2510.1": 3, "2510.2": None}
    assert patch["upgrade"] is None
    assert _apply(old, patch) == new


def test_merge_patch_of_a_new_object_is_the_object() -> None:
    new = {"a": {"b": 1}, "c": [1, 2]}
    assert merge_patch({}, new) == new
