"""Aidbox image references and the release they name.

Tags are `YYMM`, `YYMM.MINOR`, `YYMM-rc`, `YYMM-lts`, or a channel (`latest`, `edge`, `stable`)
that carries no version number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(
    r"^(?P<yy>\d{2})(?P<mm>\d{2})(?:\.(?P<minor>\d+))?(?:-(?P<suffix>[a-z0-9]+))?$"
)


Release = tuple[int, int, int]
_RELEASE_TEXT = re.compile(r"^(?P<yy>\d{2})(?P<mm>\d{2})(?:\.(?P<minor>\d+))?$")


def parse_release(text: str) -> Release | None:
    """(year, month, minor) of a release as Aidbox reports it ("2510.2", "2510"); None for
    anything else (a channel name, an empty string)."""
    match = _RELEASE_TEXT.match(text.strip())
    if match is None or not 1 <= int(match["mm"]) <= 12:
        return None
    return int(match["yy"]), int(match["mm"]), int(match["minor"] or 0)


def format_release(release: Release) -> str:
    return f"{release[0]:02d}{release[1]:02d}.{release[2]}"


@dataclass(frozen=True)
class ImageVersion:
    """What an image reference says about the Aidbox release it runs."""

    repository: str
    tag: str | None
    digest: str | None
    # (year, month, minor) of a versioned tag; None for channels, digests and unknown tags.
    release: Release | None
    # The reference always names the same image: a digest, or a full YYMM.MINOR tag (Aidbox
    # never moves those). Channels, YYMM, -rc and -lts tags move.
    fixed: bool = False

    @property
    def display(self) -> str:
        """Short human form for status and printer columns."""
        if self.tag:
            return self.tag
        if self.digest:
            return self.digest[:19]
        return "latest"

    def older_than(self, year: int, month: int) -> bool:
        """True only when the tag names a release known to be older; unknown is not older."""
        if self.release is None:
            return False
        return (self.release[0], self.release[1]) < (year, month)


def parse_image_version(image: str) -> ImageVersion:
    """Split an image reference into repository, tag and digest, and read the release."""
    rest, _, digest = image.partition("@")
    # A colon after the last slash separates the tag; one before it belongs to a registry port.
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        repository, tag = rest[:colon], rest[colon + 1 :]
    else:
        repository, tag = rest, ""
    release = None
    fixed = bool(digest)
    match = _RELEASE.match(tag)
    if match and 1 <= int(match["mm"]) <= 12:
        release = (int(match["yy"]), int(match["mm"]), int(match["minor"] or 0))
        fixed = fixed or (match["minor"] is not None and match["suffix"] is None)
    # An untagged reference without a digest means the registry's `latest`.
    if not tag and not digest:
        tag = "latest"
    return ImageVersion(
        repository=repository,
        tag=tag or None,
        digest=digest or None,
        release=release,
        fixed=fixed,
    )
