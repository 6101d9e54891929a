"""Runs loadgen.py inside a real node's network namespace against a Service's ClusterIP (or an
ingress controller's pod, with the Host header it routes by)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LOADGEN = Path(__file__).with_name("loadgen.py")


class Traffic:
    def __init__(
        self,
        holder: int,
        host: str,
        port: int,
        out: Path,
        rate: float = 60.0,
        host_header: str = "",
    ) -> None:
        self.holder, self.host, self.port, self.out, self.rate = holder, host, port, out, rate
        self.host_header = host_header
        self.proc: subprocess.Popen[bytes] | None = None
        self.result: dict[str, Any] = {}

    def start(self) -> Traffic:
        self.proc = subprocess.Popen(
            [
                *("nsenter", f"--target={self.holder}", "--net", "--", sys.executable),
                *(str(LOADGEN), "--host", self.host, "--port", str(self.port)),
                *("--rate", str(self.rate), "--out", str(self.out)),
                *("--host-header", self.host_header),
            ],
            stdin=subprocess.DEVNULL,
        )
        return self

    def progress(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.out.with_suffix(".progress").read_text())
        except (OSError, ValueError):
            return {"sent": 0, "ok": 0, "failed": 0}
        return data

    def run_until(self, requests: int, timeout: float = 120) -> None:
        """Keep the load going until at least `requests` were sent."""
        deadline = time.monotonic() + timeout
        while self.progress().get("sent", 0) < requests:
            assert self.proc is not None and self.proc.poll() is None, "the load generator died"
            assert time.monotonic() < deadline, f"fewer than {requests} requests sent"
            time.sleep(0.5)

    def stop(self) -> dict[str, Any]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.result = json.loads(self.out.read_text())
        return self.result

    def __enter__(self) -> Traffic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def get_json(holder: int, url: str, timeout: float = 3.0, host: str = "") -> Any:
    """GET `url` from inside a node's network namespace; None when it does not answer. `host`,
    when given, is sent as the Host header (the URL's host is where the request goes)."""
    code = (
        "import json,sys,urllib.request\n"
        "headers = {'Host': sys.argv[2]} if sys.argv[2] else {}\n"
        "try:\n"
        "    request = urllib.request.Request(sys.argv[1], headers=headers)\n"
        f"    print(urllib.request.urlopen(request, timeout={timeout}).read().decode())\n"
        "except Exception:\n"
        "    print('null')\n"
    )
    out = subprocess.run(
        ["nsenter", f"--target={holder}", "--net", "--", sys.executable, "-c", code, url, host],
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout + 10,
    ).stdout
    return json.loads(out)


def get_json_tls(holder: int, address: str, port: int, host: str, ca_file: Path) -> Any:
    """GET /health over TLS to address:port with SNI and Host `host`, trusting only `ca_file`, from
    inside a node's network namespace; None when it does not answer or the certificate is not
    valid for `host`."""
    code = (
        "import json,socket,ssl,sys\n"
        "address, port, host, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]\n"
        "context = ssl.create_default_context(cafile=ca)\n"
        "try:\n"
        "    with socket.create_connection((address, port), timeout=3) as raw:\n"
        "        with context.wrap_socket(raw, server_hostname=host) as conn:\n"
        "            request = f'GET /health HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n'\n"
        "            conn.sendall(request.encode())\n"
        "            answer = b''.join(iter(lambda: conn.recv(65536), b''))\n"
        "    head, _, body = answer.partition(b'\\r\\n\\r\\n')\n"
        "    ok = head.split(b' ')[1] == b'200'\n"
        "    print(body.decode() if ok else 'null')\n"
        "except (OSError, IndexError):\n"
        "    print('null')\n"
    )
    args = [address, str(port), host, str(ca_file)]
    out = subprocess.run(
        ["nsenter", f"--target={holder}", "--net", "--", sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=15,
    ).stdout
    return json.loads(out)
