"""JSON merge patches (RFC 7386) that say everything: a merge patch changes only the keys it
names, so a key that the new object no longer has must be named with null, or it stays."""

from __future__ import annotations

from typing import Any


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new`: keys `new` dropped become null (in nested
    objects too); lists and scalars are replaced whole, as the RFC does."""
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            patch[key] = merge_patch(before, value)
        else:
            patch[key] = value
    return patch
