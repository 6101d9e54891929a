"""The operator with some of its protections taken out, named in $FAULTS_REMOVE (comma-separated),
so that the fault suite can be seen to fail without them. Test-only; never shipped.

- guard: the client's leadership check before writes always passes;
- catch-all: the election loop dies on any error but an ApiError without stopping the workers
  (the exception handling of the version issue 10 was filed against);
- timeout: API requests get a 300 s timeout instead of one well below the renew deadline;
- abort: closed connections are closed gracefully, so an abandoned write may still be sent;
- adopt: a 409 on creating the keys Secret drops the cached entry and fails the pass, as before
  issue 10 (the Secret an interrupted pass created is never recognised).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from aidbox_operator import cli
from aidbox_operator.reconcile import cluster, kube
from aidbox_operator.reconcile.leader import LeaderElector

REMOVED = {p for p in os.environ.get("FAULTS_REMOVE", "").split(",") if p}
KNOWN = {"guard", "catch-all", "timeout", "abort", "adopt"}
if REMOVED - KNOWN:
    raise SystemExit(f"FAULTS_REMOVE: unknown protections {sorted(REMOVED - KNOWN)}")


class _Escape(BaseException):
    """Passes the election loop's `except Exception`, as unhandled errors used to."""


def _install() -> None:
    if "guard" in REMOVED:
        LeaderElector.may_write = lambda self: True  # type: ignore[method-assign]
    if "catch-all" in REMOVED:
        attempt = LeaderElector._attempt

        async def fragile(self: LeaderElector, seconds: float) -> bool:
            try:
                return await attempt(self, seconds)
            except kube.ApiError:
                raise
            except Exception as err:
                if self._leading:
                    raise _Escape(repr(err)) from err
                raise

        LeaderElector._attempt = fragile  # type: ignore[method-assign]
        # The old loop did not return lost leadership to the workers either.
        LeaderElector._lose = lambda self, why: None  # type: ignore[method-assign]
    if "timeout" in REMOVED:
        init = kube.KubeClient.__init__

        def slow(self: kube.KubeClient, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            self.request_timeout = 300.0

        kube.KubeClient.__init__ = slow  # type: ignore[method-assign]
    if "abort" in REMOVED:

        def graceful(addr_info: Any) -> socket.socket:
            family, type_, proto, _, _ = addr_info
            return socket.socket(family, type_, proto)

        kube._abortive_socket = graceful

    if "adopt" in REMOVED:
        ensure = cluster.ClusterReconciler._ensure_auth_keys

        async def refuse(*_: Any) -> dict[str, Any]:
            raise _Conflict

        async def old_ensure(self: Any, aidbox: Any, *args: Any) -> Any:
            try:
                return await ensure(self, aidbox, *args)
            except _Conflict:
                name = cluster.auth_keys_secret_name(aidbox)
                self.store.configs.pop(("Secret", aidbox.namespace, name), None)
                raise kube.ApiError(409, "Conflict", f'secrets "{name}" already exists') from None

        cluster.existing_own = refuse
        cluster.ClusterReconciler._ensure_auth_keys = old_ensure  # type: ignore[method-assign]


class _Conflict(Exception):
    pass


if __name__ == "__main__":
    _install()
    sys.exit(cli.main(sys.argv[1:]))
