"""Content hashes that make changes visible in manifests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def stable_hash(value: Any) -> str:
    """A short digest of a JSON-like value, independent of dict order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_hash(sources: Mapping[str, str | None]) -> str:
    """Digest over the digests of referenced ConfigMap/Secret data, keyed by `Kind/name`.

    A missing object (None) hashes differently from an empty one, so its appearance rolls the
    pods. Only digests come in and go out: nothing about Secret values is revealed.
    """
    return stable_hash(dict(sources))
