"""The operator with some of its protections taken out, named in $FAULTS_REMOVE (comma-separated),
so that the fault suite can be seen to fail without them. Test-only; never shipped.

- guard: the client's leadership check before writes always passes;
- catch-all: the election loop dies on any error but an ApiError without stopping the workers
  (the exception handling of the version issue 10 was filed against);
- timeout: API requests get a 300 s timeout instead of one well below the renew deadline;
- abort: closed connections are closed gracefully, so an abandoned write may still be sent;
- downgrade: the downgrade guard lets every release through (an older one included);
- adopt: a 409 on creating the keys Secret drops the cached entry and fails the pass, as before
  issue 10 (the Secret an interrupted pass created is never recognised).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from aidbox_operator import cli
from aidbox_operator.reconcile import auth_keys, cluster
from aidbox_operator.reconcile.store import ConfigSummary
from aidbox_operator.runtime import client as kube
from aidbox_operator.runtime.kinds import SECRETS
from aidbox_operator.runtime.leader import LeaderElector

REMOVED = {p for p in os.environ.get("FAULTS_REMOVE", "").split(",") if p}
KNOWN = {"guard", "catch-all", "timeout", "abort", "adopt", "downgrade"}
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

    if "downgrade" in REMOVED:
        cluster._downgrade = lambda *args: None
    if "adopt" in REMOVED:
        # Before issue 10 a never-reconciled cluster assumed its keys Secret absent, and a 409
        # on creating it dropped the cache entry and failed the pass: after a crash between
        # creating the Secret and the first status write, every pass tried to create it again.
        plan = cluster.plan_keys

        def assume_absent(aidbox: Any, configs: Any, deployment: Any) -> Any:
            name = auth_keys.auth_keys_secret_name(aidbox)
            if deployment is None:
                configs = {**configs, ("Secret", aidbox.namespace, name): ConfigSummary(False)}
            return plan(aidbox, configs, deployment)

        async def old_create(self: Any, aidbox: Any, data: dict[str, str]) -> Any:
            name = auth_keys.auth_keys_secret_name(aidbox)
            try:
                return await self.client.create(
                    SECRETS, aidbox.namespace, auth_keys.build_keys_secret(aidbox, data)
                )
            except kube.ApiError as err:
                if err.conflict:
                    self.store.configs.pop(("Secret", aidbox.namespace, name), None)
                raise

        cluster.plan_keys = assume_absent  # type: ignore[assignment]
        auth_keys.KeysKeeper._create = old_create  # type: ignore[method-assign]


if __name__ == "__main__":
    _install()
    sys.exit(cli.main(sys.argv[1:]))
