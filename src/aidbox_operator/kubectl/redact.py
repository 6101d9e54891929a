"""What a support bundle may hold (pure): objects without Secret data, literal env values or
the last-applied copies kubectl keeps in an annotation, and a last pass that blanks any Secret
value still found in the text, whole or line by line (a PEM key spread over lines)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

REDACTED = "(redacted)"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Shorter values ("true", "1") and lines of a decoded multi-line Secret ("-----BEGIN ...")
# say nothing and are everywhere; blanking them would blank the bundle.
MIN_SECRET_VALUE = 6
MIN_SECRET_LINE = 16


def _meta(meta: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in meta.items() if k != "managedFields"}
    annotations = {k: v for k, v in (kept.get("annotations") or {}).items() if k != LAST_APPLIED}
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    return kept


def _walk(value: Any) -> Any:
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _walk(v) for k, v in value.items()}
    if "name" in out and "value" in out and len(out) <= 3 and isinstance(out["value"], str):
        out["value"] = REDACTED  # an env var given literally: it may be a password
    return out


def scrub(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """An object as the bundle keeps it."""
    if "metadata" not in body:
        return dict(body)
    out = _walk({k: v for k, v in body.items() if k not in ("data", "stringData", "metadata")})
    out["metadata"] = _meta(body["metadata"])
    if kind == "Secret":
        out["keys"] = sorted({*(body.get("data") or {}), *(body.get("stringData") or {})})
    return dict(out)


def _armor(line: str) -> bool:
    """A PEM boundary ("-----BEGIN PRIVATE KEY-----"): the same in every key."""
    return line.startswith("-----") and line.endswith("-----")


def secret_needles(values: list[str]) -> list[str]:
    """Every form a Secret value could take in the text: as stored (base64), decoded, and each
    long line of a decoded multi-line value. Longest first, so a whole value is blanked before
    its lines."""
    needles: set[str] = set()
    for encoded in values:
        needles.add(encoded)
        try:
            text = base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            continue
        if len(text) >= MIN_SECRET_VALUE:
            needles.add(text)
        lines = (line.strip() for line in text.splitlines())
        needles.update(line for line in lines if len(line) >= MIN_SECRET_LINE and not _armor(line))
    return sorted((n for n in needles if len(n) >= MIN_SECRET_VALUE), key=len, reverse=True)


def blank(text: str, needles: list[str]) -> tuple[str, int]:
    """`text` with every needle replaced, and how many replacements were made."""
    count = 0
    for needle in needles:
        found = text.count(needle)
        if found:
            count += found
            text = text.replace(needle, REDACTED)
    return text, count
