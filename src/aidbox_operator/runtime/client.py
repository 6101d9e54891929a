"""A thin asyncio client for the Kubernetes API: plain dicts in and out, requests counted.

Built on `kubernetes.aio`'s ApiClient for configuration and authentication (in-cluster,
KUBECONFIG, ~/.kube/config), but without the generated models: the operator works with the
same dicts that `render` produces, as lightkube does.

Every request has a total timeout (a hung connection must not outlive the leader's renew
deadline), and every write asks the leadership guard first, so that a replica that stopped
leading cannot write, not even from a reconcile that was already under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
from kubernetes.aio import client as aio_client
from kubernetes.aio import config as aio_config

from aidbox_operator.metrics import API_RECEIVED_BYTES, API_REQUESTS
from aidbox_operator.runtime.kinds import ResourceKind

# Well below the default renew deadline (10 s): a request that hangs fails in time for the
# elector to notice, and a write sent by a leader is answered or abandoned before the lease
# could pass to another replica (lease duration - renew deadline = 5 s by default).
DEFAULT_REQUEST_TIMEOUT = 5.0
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The elector's own requests: the Lease is how leadership is won, so it is never guarded.
LEASE_VERB = "lease"
APPLY_PATCH = "application/apply-patch+yaml"
# A server's Retry-After is honoured up to this long (the request's own time limit still holds).
MAX_RETRY_AFTER = 5.0
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class ApiError(Exception):
    """A non-2xx answer. The message is the API server's own, never a request body."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        # For a 429: when the server asked to be tried again (None: it did not say).
        self.retry_after: float | None = None

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


class NotLeaderError(Exception):
    """A write refused before it was sent: this replica does not lead (or its lease may have
    passed to another replica). Nothing was sent to the API server."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"not the leader: {method} {path} not sent")


def _always_leading() -> bool:
    return True


class KubeClient:
    """Makes API requests and counts them by verb (for metrics and the zero-write checks)."""

    def __init__(
        self,
        api_client: aio_client.ApiClient,
        field_manager: str,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        connector: aiohttp.BaseConnector | None = None,
    ) -> None:
        self._api = api_client
        # Every write names this manager: server-side apply then knows one owner of our fields.
        self.field_manager = field_manager
        self._connector = connector
        self.request_timeout = request_timeout
        # Asked before every write; the leader elector installs its own (without election
        # this replica always leads).
        self.may_write: Callable[[], bool] = _always_leading
        self._streams: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._streams is not None:
            await self._streams.close()
        await self._api.close()
        if self._connector is not None:
            await self._connector.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        verb: str | None = None,
        seconds: float | None = None,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """One request, answered within `seconds` (default: the client's request timeout)
        or TimeoutError. Writes raise NotLeaderError, unsent, when not leading.

        A 429 that says when to come back (API Priority and Fairness does) is tried again
        then, within the same time limit, as client-go's REST client does: throttling is not a
        failed pass, and must not grow a cluster's backoff to a minute."""
        verb = verb or method.lower()
        async with asyncio.timeout(seconds or self.request_timeout):
            while True:
                if method in WRITE_METHODS and verb != LEASE_VERB and not self.may_write():
                    raise NotLeaderError(method, path)
                API_REQUESTS.labels(verb=verb).inc()
                try:
                    return await self._send(method, path, query, body, content_type, accept)
                except ApiError as err:
                    if err.retry_after is None:
                        raise
                    await asyncio.sleep(err.retry_after)

    async def _send(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        accept: str,
    ) -> dict[str, Any]:
        headers = {**self._api.default_headers, "Accept": accept}
        headers["Content-Type"] = content_type or "application/json"
        # Token-based credentials (in-cluster, exec plugins) are refreshed here.
        await self._api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)
        url = self._api.configuration.host + path
        if query:
            url += "?" + urlencode(query)
        response = await self._api.rest_client.request(method, url, headers=headers, body=body)
        raw = await response.read()
        API_RECEIVED_BYTES.inc(len(raw))
        if response.status >= 400:
            error = _api_error(response.status, response.reason or "", raw)
            if response.status == 429:
                error.retry_after = _seconds(response.headers.get("Retry-After"))
            raise error
        result: dict[str, Any] = json.loads(raw) if raw else {}
        return result

    async def get(self, kind: ResourceKind, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", kind.path(namespace, name), verb="get")
        except ApiError as err:
            if err.not_found:
                return None
            raise

    async def apply(
        self,
        kind: ResourceKind,
        manifest: dict[str, Any],
        field_manager: str | None = None,
        force: bool = True,
    ) -> dict[str, Any]:
        """Server-side apply, under the client's field manager unless `field_manager` names
        another; without `force` a field another manager owns with another value is a 409."""
        meta = manifest["metadata"]
        query = {"fieldManager": field_manager or self.field_manager}
        if force:
            query["force"] = "true"
        return await self.request(
            "PATCH",
            kind.path(meta["namespace"], meta["name"]),
            query=query,
            body=manifest,
            content_type=APPLY_PATCH,
            verb="apply",
        )

    async def create(
        self, kind: ResourceKind, namespace: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "POST",
            kind.path(namespace),
            query={"fieldManager": self.field_manager},
            body=body,
            verb="create",
        )

    async def delete(
        self, kind: ResourceKind, namespace: str, name: str, uid: str | None = None
    ) -> None:
        """Delete; with `uid`, only that very object (an object of that name made since is
        another one, and is left alone: 409, taken as done)."""
        body = {"preconditions": {"uid": uid}} if uid else None
        try:
            await self.request("DELETE", kind.path(namespace, name), body=body, verb="delete")
        except ApiError as err:
            if not (err.not_found or (uid and err.conflict)):
                raise

    async def patch_status(
        self, kind: ResourceKind, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            kind.path(namespace, name, "status"),
            query={"fieldManager": self.field_manager},
            body={"status": status},
            content_type=MERGE_PATCH,
            verb="patch",
        )

    # -- watch streams (runtime/informer.py) -------------------------------------------------
    async def watch(
        self,
        path: str,
        query: dict[str, Any],
        *,
        accept: str = "application/json",
        read_timeout: float = 120.0,
    ) -> AsyncIterator[dict[str, Any]]:
        """One watch request: yields its events (`{"type": ..., "object": ...}`) as they come.

        Watches hold their connection for minutes, one per kind and namespace, so they get a
        connection pool of their own: they never take a connection a reconcile is waiting for.
        """
        API_REQUESTS.labels(verb="watch").inc()
        config = self._api.configuration
        if self._streams is None:
            extra = getattr(config, "client_session_kwargs", None) or {}
            self._streams = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._api.rest_client.ssl_context),
                trust_env=bool(extra.get("trust_env", True)),
            )
        headers = {**self._api.default_headers, "Accept": accept}
        await self._api.update_params_for_auth(headers, [], ["BearerToken"], path, "GET", None)
        url = f"{config.host}{path}?{urlencode({**query, 'watch': 'true'})}"
        # No total timeout: the server ends the watch (timeoutSeconds); a silent connection
        # (bookmarks arrive about every minute) is dead after read_timeout.
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=read_timeout)
        async with self._streams.get(
            url,
            headers=headers,
            timeout=timeout,
            proxy=config.proxy or None,
            server_hostname=config.tls_server_name or None,
        ) as response:
            if response.status >= 400:
                raw = await response.read()
                API_RECEIVED_BYTES.inc(len(raw))
                raise _api_error(response.status, response.reason or "", raw)
            pending = bytearray()
            async for chunk in response.content.iter_any():
                API_RECEIVED_BYTES.inc(len(chunk))
                pending += chunk
                lines = _complete_lines(pending)
                # Nothing of the last event stays referenced here while the watch waits for
                # the next one (for minutes, in every one of the process's watches).
                del chunk
                while lines:
                    yield json.loads(lines.popleft())


def _complete_lines(pending: bytearray) -> deque[bytes]:
    """The events complete in `pending`, removed from it: newline-delimited JSON, and a large
    event can span many chunks."""
    lines: deque[bytes] = deque()
    start = 0
    while (end := pending.find(b"\n", start)) >= 0:
        line = bytes(pending[start:end])
        start = end + 1
        if line.strip():
            lines.append(line)
    del pending[:start]
    return lines


def _seconds(header: str | None) -> float | None:
    """A Retry-After of whole seconds, capped; None when absent or not a number."""
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(header))) if header else None
    except ValueError:
        return None


def _api_error(status: int, reason: str, raw: bytes) -> ApiError:
    message = raw.decode(errors="replace")[:500]
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(raw).get("message", message)
    return ApiError(status, reason, message)


async def connect(
    field_manager: str,
    kubeconfig: str | None = None,
    context: str | None = None,
    identity: str = "",
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
) -> KubeClient:
    """In-cluster credentials when running in a pod, otherwise KUBECONFIG or ~/.kube/config.

    The user agent names the replica (`<field manager>/<identity>`), so the API server's audit
    log tells which replica made each request."""
    configuration = aio_client.Configuration()
    if (
        kubeconfig is None
        and os.environ.get("KUBERNETES_SERVICE_HOST")
        and not os.environ.get("KUBECONFIG")
    ):
        aio_config.load_incluster_config(client_configuration=configuration)
    else:
        await aio_config.load_kube_config(
            config_file=kubeconfig,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    # Enough connections for every worker plus the Event posters, so none queues for one.
    configuration.connection_pool_maxsize = 64
    session: dict[str, Any] = {}
    if not any(
        os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
    ):
        # Without proxy variables there is nothing to read from the environment, and aiohttp's
        # trust_env would look up ~/.netrc on a thread for every request (measured: requests
        # queued behind RSA key generation on the default executor during a burst).
        session["trust_env"] = False
    api = aio_client.ApiClient(configuration)
    connector = aiohttp.TCPConnector(
        limit=configuration.connection_pool_maxsize,
        ssl=api.rest_client.ssl_context,
        socket_factory=_abortive_socket,
    )
    configuration.client_session_kwargs = {**session, "connector": connector}
    api.user_agent = f"{field_manager}/{identity}" if identity else field_manager
    return KubeClient(api, field_manager, request_timeout, connector)


def _abortive_socket(addr_info: Any) -> socket.socket:
    """A socket whose close discards unsent data and resets the connection (SO_LINGER 0).

    A request abandoned at its timeout must not reach the API server later: with a graceful
    close the kernel would keep retransmitting it, and after a network partition heals a write
    sent while this replica led could land after another replica took over."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return sock
