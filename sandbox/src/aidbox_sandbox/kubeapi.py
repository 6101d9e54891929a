"""Talking to the sandbox's API server without a Kubernetes client library: a tiny TLS client
for JSON requests, health probes of the control-plane processes, kubeconfig documents and free
ports on 127.0.0.1.

A leaf module: the control plane, the real nodes and the orchestrator all use it, it uses none
of them.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from pathlib import Path
from typing import Any

CONTEXT = "aidbox-sandbox"
LOOPBACK = "127.0.0.1"


class KubeApi:
    """JSON requests to the API server on 127.0.0.1 with a client certificate."""

    def __init__(self, port: int, ca: Path, cert: Path, key: Path) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=str(ca))
        self.ctx.load_cert_chain(str(cert), str(key))

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(LOOPBACK, self.port, context=self.ctx, timeout=timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json", "User-Agent": "aidbox-sandbox"}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            data: Any = json.loads(raw) if raw.startswith(b"{") else raw.decode(errors="replace")
        except ValueError:
            data = raw.decode(errors="replace")
        return resp.status, data


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def https_ok(port: int, path: str) -> bool:
    """GET https://127.0.0.1:<port><path> answers 200 (certificate not checked)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return _answers_ok(http.client.HTTPSConnection(LOOPBACK, port, context=ctx, timeout=2), path)


def http_ok(port: int, path: str) -> bool:
    """GET http://127.0.0.1:<port><path> answers 200."""
    return _answers_ok(http.client.HTTPConnection(LOOPBACK, port, timeout=2), path)


def _answers_ok(conn: http.client.HTTPConnection, path: str) -> bool:
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def kubeconfig_dict(server: str, ca_pem: bytes, user: dict[str, str]) -> dict[str, Any]:
    """A kubeconfig of one cluster (server, CA), user and context, each named `aidbox-sandbox`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT, "user": user}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
