"""Measures whether `kubernetes.aio.leaderelection` (kubernetes==37) has the semantics the
operator needs: run it on a sandbox through the fault proxy, cut the leader off, and report
how long its on-started task keeps running (i.e. would keep writing) after its last renewal,
and whether on-stopped is ever called.

    AIDBOX_SANDBOX_DIR=/tmp/x .venv/bin/aidbox-operator sandbox up
    AIDBOX_SANDBOX_DIR=/tmp/x .venv/bin/python tests/faults/upstream_election.py

Prints one JSON line per fault. Not part of `make test`: it measures a library, not ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from kubernetes.aio import client, config
from kubernetes.aio.leaderelection import electionconfig, leaderelection
from kubernetes.aio.leaderelection.resourcelock.leaselock import LeaseLock

sys.path.insert(0, str(Path(__file__).parent))
from proxy import BLACKHOLE, RESET, FaultProxy

from aidbox_sandbox import Sandbox

LEASE, RENEW, RETRY = 15, 10, 2


async def measure(kubeconfig: Path, mode: str, seconds: float) -> dict[str, Any]:
    cfg = yaml.safe_load(kubeconfig.read_text())  # noqa: ASYNC240 (a script, nothing waits)
    host, port = cfg["clusters"][0]["cluster"]["server"].removeprefix("https://").rsplit(":", 1)
    proxy = FaultProxy(host, int(port))
    proxy.start()
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    proxied = kubeconfig.with_name(f"upstream-{mode}.kubeconfig")
    proxied.write_text(yaml.safe_dump(cfg))
    configuration = client.Configuration()
    await config.load_kube_config(str(proxied), client_configuration=configuration)
    api = client.ApiClient(configuration)
    events: dict[str, float] = {}
    elected = asyncio.Event()
    last_renew = [0.0]
    name = f"upstream-{mode}-{int(time.time())}"
    # The library cannot create its Lease (kubernetes 37.0.2: create_namespaced_lease(...,
    # pretty=True) fails pydantic validation, `pretty` must be a str): create it for it.
    await client.CoordinationV1Api(api).create_namespaced_lease(
        "default",
        client.V1Lease(metadata=client.V1ObjectMeta(name=name), spec=client.V1LeaseSpec()),
    )
    lock = LeaseLock(name, "default", "upstream", api)
    update = lock.update

    async def counted_update(*args: Any) -> bool:
        ok: bool = await update(*args)
        if ok:
            last_renew[0] = time.monotonic()
        return ok

    lock.update = counted_update  # type: ignore[method-assign]

    async def leading() -> None:
        events["started"] = time.monotonic()
        elected.set()
        try:
            while True:  # a controller: "writes" as long as this task runs
                await asyncio.sleep(0.1)
                now = time.monotonic()
                if last_renew[0]:
                    gap = now - last_renew[0]
                    events["max_gap"] = max(events.get("max_gap", 0.0), gap)
        except asyncio.CancelledError:
            events["cancelled"] = time.monotonic()
            raise

    async def stopped() -> None:
        events["on_stopped"] = time.monotonic()

    election = leaderelection.LeaderElection(
        electionconfig.Config(lock, LEASE, RENEW, RETRY, leading, stopped)
    )
    runner = asyncio.create_task(election.run())
    await elected.wait()
    await asyncio.sleep(RETRY * 2)
    proxy.set_mode(mode)
    await asyncio.sleep(seconds)
    proxy.set_mode("pass")
    await asyncio.sleep(LEASE)
    outcome = "running"
    if runner.done():
        error = runner.exception()
        outcome = f"run() ended: {type(error).__name__}" if error else "run() returned"
    result = {
        "fault": f"{mode} {seconds:.0f}s",
        "run": outcome,
        "on_stopped_called": "on_stopped" in events,
        "leading_task_cancelled": "cancelled" in events,
        # How long the on-started task (the controller) ran on a renewal older than this.
        "leading_on_a_renewal_older_than_s": round(events.get("max_gap", 0.0), 1),
        "renew_deadline_s": RENEW,
    }
    runner.cancel()
    proxy.stop()
    await api.close()
    return result


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    box = Sandbox()
    for mode, seconds in ((RESET, 3.0), (BLACKHOLE, 30.0)):
        print(json.dumps(await measure(box.kubeconfig, mode, seconds)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
