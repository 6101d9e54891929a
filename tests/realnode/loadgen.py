"""Steady HTTP load for the real-node tests, run inside a node's network namespace.

One GET every 1/rate seconds, each on a new TCP connection (what a client behind a Service sees
when a pod goes away), whatever the previous requests are doing. Runs until SIGTERM, then waits
for the requests in flight and writes a JSON summary; a progress file is rewritten every second.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any


def one_request(
    host: str, port: int, path: str, timeout: float, host_header: str
) -> tuple[bool, str, str]:
    """(ok, the serving version or what failed, the serving pod)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Connection": "close", **({"Host": host_header} if host_header else {})}
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            return False, f"http {resp.status}", ""
        served = json.loads(body)
        return True, str(served.get("version", "?")), str(served.get("pod", "?"))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return False, type(exc).__name__, ""
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    # The Host header to send (an ingress controller routes by it); default: --host.
    parser.add_argument("--host-header", default="")
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lock = threading.Lock()
    counts: dict[str, Any] = {"sent": 0, "ok": 0, "failed": 0}
    errors: collections.Counter[str] = collections.Counter()
    versions: collections.Counter[str] = collections.Counter()
    pods: collections.Counter[str] = collections.Counter()
    failures: list[tuple[float, str]] = []
    started = time.monotonic()

    def record(future: concurrent.futures.Future[tuple[bool, str, str]], at: float) -> None:
        ok, detail, pod = future.result()
        with lock:
            if ok:
                counts["ok"] += 1
                versions[detail] += 1
                pods[pod] += 1
            else:
                counts["failed"] += 1
                errors[detail] += 1
                if len(failures) < 200:
                    failures.append((round(at - started, 3), detail))

    def summary() -> dict[str, Any]:
        with lock:
            return {
                **counts,
                "errors": dict(errors),
                "versions": dict(versions),
                "pods": dict(pods),
                "failures": list(failures),
                "seconds": round(time.monotonic() - started, 2),
                "rate": args.rate,
            }

    progress = args.out.with_suffix(".progress")
    last_progress = 0.0
    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        next_at = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if now < next_at:
                stop.wait(next_at - now)
                continue
            next_at += 1.0 / args.rate
            with lock:
                counts["sent"] += 1
            future = pool.submit(
                one_request, args.host, args.port, args.path, args.timeout, args.host_header
            )
            future.add_done_callback(lambda f, at=now: record(f, at))
            if now - last_progress >= 1.0:
                last_progress = now
                progress.write_text(json.dumps(summary()))
    args.out.write_text(json.dumps(summary(), indent=2))


if __name__ == "__main__":
    main()
