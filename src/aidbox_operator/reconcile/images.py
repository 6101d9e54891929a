"""The image the pods run: spec.image itself when it always names the same image (a digest, a
full YYMM.MINOR tag), else the digest a moving tag named when first seen.

Resolved through the registry's API with the cluster's imagePullSecrets before any pod runs
the tag, so every replica starts from the same image and a pod that restarts later (a node
loss, an eviction) cannot pull a newer release and start an unplanned migration. The pin lives
in status (it survives operator restarts) and moves only when spec.image or
spec.upgrade.tagRefresh changes.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aidbox_operator.model import AidboxCluster, parse_image_version
from aidbox_operator.model.status import PinnedImage
from aidbox_operator.runtime.client import ApiError, KubeClient
from aidbox_operator.runtime.kinds import SECRETS
from aidbox_operator.runtime.registry import (
    Credentials,
    Resolved,
    ResolveError,
    credentials_from_dockerconfig,
)
from aidbox_operator.status import Blocker

log = logging.getLogger(__name__)
DOCKER_CONFIG_KEY = ".dockerconfigjson"
# A registry that did not answer is asked again after this long (a new spec asks at once).
RESOLVE_RETRY_SECONDS = 30.0


class TagResolver(Protocol):
    async def resolve(self, image: str, credentials: Credentials | None = None) -> Resolved: ...


@dataclass(frozen=True)
class ImagePlan:
    image: str  # what the pod template names
    version: str  # release (or tag) for the version label and the downgrade guard
    pinned: PinnedImage | None
    blocker: Blocker | None = None
    # The Deployment already runs this moving tag as written (made before pinning existed, or
    # with pinning off): pinning alone would restart its pods, so it waits for a rollout the
    # cluster makes anyway, or for the user to ask (spec.upgrade.tagRefresh).
    deferred: bool = False


def pinned_reference(image: str, digest: str) -> str:
    """The user's image name (as written, so nodes resolve it as before) at that digest."""
    return f"{parse_image_version(image).repository}@{digest}"


class ImagePinner:
    def __init__(
        self, client: KubeClient, resolver: TagResolver | None, clock: Callable[[], str]
    ) -> None:
        self.client = client
        self.resolver = resolver  # None: pinning is off, moving tags reach the pods as written
        self.clock = clock

    async def plan(
        self, cluster: AidboxCluster, previous: PinnedImage | None, running: str | None = None
    ) -> ImagePlan:
        """`running`: the existing Deployment's image, if any. Pass none to pin at once."""
        spec = cluster.spec
        version = parse_image_version(spec.image)
        if self.resolver is None or version.fixed:
            return ImagePlan(spec.image, version.display, None)
        refresh = spec.upgrade.tag_refresh
        if previous and (previous.requested, previous.refresh) == (spec.image, refresh):
            return ImagePlan(previous.image, previous.version or version.display, previous)
        if running == spec.image and not refresh:
            return ImagePlan(spec.image, version.display, None, deferred=True)
        try:
            resolved = await self.resolver.resolve(spec.image, await self._credentials(cluster))
        except ResolveError as err:
            return ImagePlan(spec.image, version.display, previous, _unresolved(spec.image, err))
        pin = PinnedImage(
            requested=spec.image,
            image=pinned_reference(spec.image, resolved.digest),
            version=resolved.version,
            refresh=refresh,
            pinned_at=self.clock(),
        )
        log.info("pinned %s to %s (%s)", spec.image, pin.image, pin.version or "version unknown")
        return ImagePlan(pin.image, pin.version or version.display, pin)

    async def _credentials(self, cluster: AidboxCluster) -> Credentials:
        """Registry logins from the cluster's imagePullSecrets, the ones its pods pull with."""
        found: Credentials = {}
        for ref in cluster.spec.image_pull_secrets:
            try:
                body = await self.client.get(SECRETS, cluster.namespace, ref.name)
            except ApiError as err:
                raise ResolveError(
                    f"cannot read imagePullSecret {ref.name}: {err.reason}"
                ) from None
            encoded = ((body or {}).get("data") or {}).get(DOCKER_CONFIG_KEY)
            if encoded:
                for host, login in credentials_from_dockerconfig(base64.b64decode(encoded)).items():
                    found.setdefault(host, login)
        return found


def _unresolved(image: str, err: ResolveError) -> Blocker:
    return Blocker(
        "TagUnresolved",
        f"spec.image {image} is a moving tag and the operator pins it to a digest before any "
        f"pod runs it, but could not resolve it: {err}. Nothing running was changed; the "
        "operator tries again. Name a digest or a full YYMM.MINOR tag to skip the lookup",
        "held",
    )
