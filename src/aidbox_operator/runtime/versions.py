"""resourceVersions as the API allows them to be used.

Before Kubernetes 1.35 a resourceVersion was an opaque string: equal or not. KEP-5504
(stable in 1.35) lets a client order two versions of objects of the same resource, if both are
well-formed: a positive decimal integer without leading zeros (client-go's
`CompareResourceVersion`). Anything else is not comparable, and then only equality is known.
"""

from __future__ import annotations

from typing import Any


def resource_version(body: dict[str, Any] | None) -> str:
    """The object's (or list's) resourceVersion; "" when it has none."""
    return str(((body or {}).get("metadata") or {}).get("resourceVersion") or "")


def _well_formed(version: str) -> bool:
    return version.isascii() and version.isdigit() and not version.startswith("0")


def compare_versions(a: str, b: str) -> int | None:
    """-1, 0 or 1 as a is older than, the same as or newer than b (same resource only); None
    when either is not a well-formed version, so that nothing can be said about their order."""
    if a == b:
        return 0
    if not (_well_formed(a) and _well_formed(b)):
        return None
    # Arbitrary length: a longer number is larger; of equal length, the text orders them.
    return -1 if (len(a), a) < (len(b), b) else 1


def is_older(candidate: str, known: str) -> bool:
    """True only when `candidate` is known to be older than `known`: an object read or
    answered at `candidate` must not replace one stored at `known`."""
    return compare_versions(candidate, known) == -1
