"""List+watch of one kind in one scope: the operator's own informer (client-go's reflector).

Why not kopf's watches: kopf filters labels on the client, so it receives every Pod of the
cluster, and it has no metadata-only watches, so following Secrets means receiving every Helm
release Secret in full. Here the API server does the filtering: a label selector, and for
ConfigMaps and Secrets PartialObjectMetadata (no data at all). And one watch stack for every kind
means one set of timeouts, one 410 path, one namespace rule, and one moment when all have listed.

Semantics: a paginated LIST gives the complete state in scope and a resourceVersion (the feed
is told what is present, so it can drop what vanished while nobody watched); a WATCH goes on
from that version with bookmarks, so a reconnect resumes from a recent version; 410 Gone means
the version is too old: LIST again. Other failures reconnect with exponential backoff. A kind
the API does not serve (a CRD not installed) waits, by a watch on that CRD, until it is.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol

import aiohttp

from aidbox_operator.runtime.backoff import backoff_delay
from aidbox_operator.runtime.client import ApiError, KubeClient
from aidbox_operator.runtime.kinds import CRDS, ResourceKind
from aidbox_operator.runtime.versions import resource_version

log = logging.getLogger(__name__)

METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
# The API server then sends bookmarks about once a minute: a longer silence is a dead link.
READ_TIMEOUT = 180.0
# The server ends each watch after this long (plus up to a minute, spread): one figure for
# every watch of the process.
WATCH_SECONDS = 600

Key = tuple[str, str]  # (namespace, name)


class Gone(Exception):
    """410: the resourceVersion to watch from is no longer in the API server's history."""


def namespace_matches(name: str, pattern: str) -> bool:
    """`--namespace` patterns, with the rules kopf gave them when kopf did the watching (so
    existing flags keep their meaning): comma-separated globs; `!glob` excludes; a leading
    exclusion implies a leading `*`; an inclusive glob after the first re-admits only names
    the first one admitted."""
    globs = [g.strip() for g in pattern.split(",")]
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    first = fnmatchcase(name, globs[0])
    matched = first
    for glob in globs[1:]:
        if glob.startswith("!"):
            matched = matched and not fnmatchcase(name, glob.lstrip("!"))
        elif first and fnmatchcase(name, glob):
            matched = True
    return matched


@dataclass(frozen=True)
class Scope:
    """One namespace, or all of them (filtered here by kopf-style patterns, if any)."""

    namespace: str | None = None
    patterns: tuple[str, ...] = ()

    def accepts(self, namespace: str) -> bool:
        if self.namespace is not None:
            return namespace == self.namespace
        return not self.patterns or any(namespace_matches(namespace, p) for p in self.patterns)

    @property
    def label(self) -> str:
        return self.namespace or (",".join(self.patterns) or "*")


def scopes_for(patterns: Sequence[str]) -> list[Scope]:
    """Named namespaces are followed one by one, so a RoleBinding in each is all the RBAC it
    takes (the single-namespace install). A glob cannot be granted by RBAC anyway: then one
    cluster-wide watch per kind, filtered here, costs one connection instead of one per
    matching namespace and needs no namespace watch of our own."""
    if not patterns:
        return [Scope()]
    if any(c in p for p in patterns for c in "*?[!,"):
        return [Scope(patterns=tuple(patterns))]
    return [Scope(namespace=ns) for ns in dict.fromkeys(patterns)]


class Feed(Protocol):
    def event(self, event_type: str, body: dict[str, Any]) -> None: ...

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        """A LIST completed: `present` is everything in scope at `resource_version`."""


class Shared:
    """What the informers of one process share.

    Every connection costs ~300 KB (asyncio's TLS buffers among others), and memory once taken
    stays with the process: so at most `lists` LISTs run at once (70 informers listing
    together opened 64 extra connections and kept ~20 MB), and informers waiting for the same
    CRD share one watch of it."""

    def __init__(self, lists: int = 4) -> None:
        self.list_slots = asyncio.Semaphore(lists)
        self.crd_waits: dict[str, asyncio.Task[bool]] = {}


class Informer:
    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        scope: Scope,
        feed: Feed,
        *,
        label_selector: str = "",
        metadata_only: bool = False,
        page_size: int = 500,
        watch_seconds: int = WATCH_SECONDS,
        shared: Shared | None = None,
    ) -> None:
        self.shared = shared or Shared()
        self.client = client
        self.kind = kind
        self.scope = scope
        self.feed = feed
        self.label_selector = label_selector
        self.metadata_only = metadata_only
        self.page_size = page_size
        self.watch_seconds = watch_seconds
        self.name = f"{kind.plural}@{scope.label}"
        # Set once the first LIST was delivered: the feed has the complete state.
        self.synced = asyncio.Event()
        self.lists = 0

    async def run(self) -> None:
        version = ""
        failures = 0
        while True:
            try:
                if not version:
                    async with self.shared.list_slots:
                        version = await self._list()
                    self.synced.set()
                version = await self._watch(version)
                failures = 0
            except Gone:
                log.info("%s: resourceVersion too old; listing again", self.name)
                version = ""
            except ApiError as err:
                if err.status == 410:  # an expired continue token of a paginated LIST
                    version = ""
                    continue
                if err.status in (403, 404) and not version:
                    failures = await self._unavailable(err, failures)
                    continue
                failures += 1
                await self._backoff(failures, err)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
                failures += 1
                await self._backoff(failures, err)

    async def _backoff(self, failures: int, err: BaseException) -> None:
        delay = backoff_delay(failures, jitter=0.2)
        level = logging.INFO if failures == 1 else logging.WARNING
        log.log(level, "%s: %s; reconnecting in %.1fs", self.name, err or type(err), delay)
        await asyncio.sleep(delay)

    async def _unavailable(self, err: ApiError, failures: int) -> int:
        """Not served (404) or not permitted (403): there is nothing to follow, so do not hold
        the workers; the reconciles report what is missing."""
        self.synced.set()
        group = self.kind.group
        if err.status == 404 and "." in group:
            crd = f"{self.kind.plural}.{group}"
            wait = self.shared.crd_waits.get(crd)
            if wait is None or wait.done():
                wait = asyncio.create_task(self._wait_for_crd(crd), name=f"wait-{crd}")
                self.shared.crd_waits[crd] = wait
            if await asyncio.shield(wait):
                log.info("%s: %s is installed now", self.name, crd)
                return 0
        failures += 1
        await self._backoff(failures, err)
        return failures

    async def _wait_for_crd(self, crd: str) -> bool:
        """Wait (without polling) until the CRD exists; False when it already did."""
        query: dict[str, Any] = {"fieldSelector": f"metadata.name={crd}"}
        listing = await self.client.request(
            "GET", CRDS.path(), query=query, accept=METADATA_LIST, verb="list"
        )
        if listing.get("items"):
            return False
        version = resource_version(listing)
        while True:
            watch = {**query, "resourceVersion": version, "allowWatchBookmarks": "true"}
            watch["timeoutSeconds"] = str(self.watch_seconds)
            async for event in self.client.watch(CRDS.path(), watch, accept=METADATA):
                if event.get("type") in ("ADDED", "MODIFIED"):
                    return True
                if event.get("type") == "ERROR":
                    raise Gone
                version = resource_version(event.get("object") or {}) or version

    def _query(self) -> dict[str, Any]:
        return {"labelSelector": self.label_selector} if self.label_selector else {}

    async def _list(self) -> str:
        self.lists += 1
        path = self.kind.path(self.scope.namespace)
        query = {**self._query(), "limit": str(self.page_size)}
        present: set[Key] = set()
        while True:
            # Pages bound the memory a large LIST takes, whatever the cluster holds.
            page = await self.client.request(
                "GET",
                path,
                query=query,
                accept=METADATA_LIST if self.metadata_only else "application/json",
                verb="list",
            )
            for item in page.get("items") or []:
                meta = item.get("metadata") or {}
                namespace = str(meta.get("namespace", ""))
                if self.scope.accepts(namespace):
                    present.add((namespace, str(meta.get("name", ""))))
                    self._deliver("ADDED", item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query["continue"] = token
        version = resource_version(page)
        self.feed.relisted(self.scope, present, version)
        return version

    async def _watch(self, version: str) -> str:
        query = {
            **self._query(),
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            # Spread reconnections of the many watches over time.
            "timeoutSeconds": str(self.watch_seconds + random.randrange(60)),
        }
        try:
            async for event in self.client.watch(
                self.kind.path(self.scope.namespace),
                query,
                accept=METADATA if self.metadata_only else "application/json",
                read_timeout=READ_TIMEOUT,
            ):
                version = self._on_watch_event(event, version)
                del event  # not kept alive until the next event, maybe minutes away
        except ApiError as err:
            if err.status == 410:
                raise Gone from err
            raise
        return version

    def _on_watch_event(self, event: dict[str, Any], version: str) -> str:
        """Deliver one event; the resourceVersion to resume from after it."""
        event_type = str(event.get("type"))
        body = event.get("object") or {}
        if event_type == "ERROR":
            if body.get("code") == 410:
                raise Gone
            raise ApiError(
                int(body.get("code") or 500),
                str(body.get("reason", "")),
                str(body.get("message", "")),
            )
        version = resource_version(body) or version
        if event_type != "BOOKMARK":
            self._deliver(event_type, body)
        return version

    def _deliver(self, event_type: str, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if not self.scope.accepts(str(meta.get("namespace", ""))):
            return
        # List items carry no kind; metadata-only objects say PartialObjectMetadata.
        body["kind"] = self.kind.kind
        body["apiVersion"] = self.kind.api_version
        self.feed.event(event_type, body)
