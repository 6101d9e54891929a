"""An OCI registry on 127.0.0.1 for the real nodes to pull from: the CNCF distribution
registry (github.com/distribution/distribution/v3/cmd/registry, built from gomod/registry by
build.ensure_registry_binary), started only when asked for.

It serves plain HTTP on 127.0.0.1:<free port> and nothing else (no debug listener, tracing
exporters off), stores blobs under <state>/registry/storage, has no authentication, and allows
deletes. Real nodes reach it through relays, as they reach the API server
(RealNodes.connect_registry), and their containerd pulls from it over HTTP (hosts.toml).

Tests put images into it with push() (manifest and blobs over the registry's HTTP API):
push_standin() a stand-in release real nodes run, push_synthetic() one made without building
for simulated pods. Both carry their version in the config label
org.opencontainers.image.version. digest() reads a tag's digest back; pushing another image
under the same tag moves the tag.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from . import build, nodehost
from .errors import SandboxError
from .files import tail
from .images import MANIFEST_MEDIA_TYPE, OciImage, standin_release, synthetic_release
from .kubeapi import LOOPBACK, free_port, http_ok

_ACCEPT = ", ".join(
    [
        MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# OpenTelemetry is wired into the registry; without these its exporter would try localhost:4318.
_QUIET = {
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
}


def registry_config(port: int, storage: Path) -> dict[str, Any]:
    """The registry's configuration: loopback only, filesystem storage, deletes on, no auth."""
    return {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"{LOOPBACK}:{port}",
            "net": "tcp",
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": False}},
    }


class Registry:
    """The sandbox's registry: start(), stop(), url/host, push() and digest()."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "registry"

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def log(self) -> Path:
        return self.state_dir / "logs" / "registry.log"

    @property
    def binary(self) -> Path:
        return build.registry_bin_dir() / "registry"

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / "state.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def port(self) -> int:
        port = self._state().get("port")
        if not isinstance(port, int):
            raise SandboxError("the sandbox's registry is not running (no recorded port)")
        return port

    @property
    def host(self) -> str:
        """host:port as image references name it, e.g. 127.0.0.1:40123."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def reference(self, repository: str, tag: str) -> str:
        """An image reference for a pod spec: <host:port>/<repository>:<tag>."""
        return f"{self.host}/{repository}:{tag}"

    @property
    def pid(self) -> int | None:
        state = self._state()
        pid = state.get("pid")
        if isinstance(pid, int) and nodehost.proc_start_time(pid) == state.get("start"):
            return pid
        return None

    def running(self) -> bool:
        port = self._state().get("port")
        return self.pid is not None and isinstance(port, int) and http_ok(port, "/v2/")

    # -- start and stop
    def start(self, progress: build.Progress = print, timeout: float = 30) -> Registry:
        """Build the registry when needed, start it on a free loopback port and wait until it
        answers /v2/. A no-op when it already runs."""
        if self.running():
            return self
        binary = build.ensure_registry_binary(progress)
        self.stop()
        port = free_port()
        (self.root / "storage").mkdir(parents=True)
        self.config.write_text(yaml.safe_dump(registry_config(port, self.root / "storage")))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as fh:
            proc = subprocess.Popen(
                [str(binary), "serve", str(self.config)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **_QUIET},
            )
        state = {"pid": proc.pid, "start": nodehost.proc_start_time(proc.pid), "port": port}
        (self.root / "state.json").write_text(json.dumps(state))
        deadline = time.monotonic() + timeout
        while not http_ok(port, "/v2/"):
            if proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SandboxError(
                    f"the registry did not start on {LOOPBACK}:{port}; last lines of "
                    f"{self.log}:\n{tail(self.log)}"
                )
            time.sleep(0.1)
        progress(f"registry up: {self.url} (storage {self.root / 'storage'})")
        return self

    def stop(self) -> None:
        """Stop the registry (the recorded process, or one of ours found by its exact
        arguments after a crash) and delete its storage."""
        pids = nodehost.processes_with_args(str(self.binary), str(self.config))
        if self.pid is not None:
            pids.add(self.pid)
        nodehost.kill_all(pids, grace=3)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the HTTP API (distribution spec)
    def _request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=60)
        try:
            conn.request(method, target, body=body or None, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def _upload_blob(self, repository: str, digest: str, data: bytes) -> None:
        code, _, _ = self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
        if code == 200:
            return
        code, headers, answer = self._request("POST", f"/v2/{repository}/blobs/uploads/")
        if code != 202 or not headers.get("Location"):
            raise SandboxError(
                f"starting a blob upload to {repository} failed ({code}): {answer!r}"
            )
        location = urllib.parse.urlsplit(urllib.parse.urljoin(self.url, headers["Location"]))
        query = [*urllib.parse.parse_qsl(location.query), ("digest", digest)]
        target = f"{location.path}?{urllib.parse.urlencode(query)}"
        code, _, answer = self._request(
            "PUT", target, data, {"Content-Type": "application/octet-stream"}
        )
        if code != 201:
            raise SandboxError(
                f"uploading blob {digest} to {repository} failed ({code}): {answer!r}"
            )

    def push(self, repository: str, tag: str, image: OciImage) -> str:
        """Upload `image` as <repository>:<tag> (moving the tag if it named another image);
        return the manifest digest the registry reports."""
        for digest, data in image.blobs.items():
            self._upload_blob(repository, digest, data)
        code, headers, answer = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            image.manifest,
            {"Content-Type": MANIFEST_MEDIA_TYPE},
        )
        if code != 201:
            raise SandboxError(f"pushing {repository}:{tag} failed ({code}): {answer!r}")
        digest = headers.get("Docker-Content-Digest", "")
        if digest != image.digest:
            raise SandboxError(
                f"the registry stored {repository}:{tag} as {digest!r}, not {image.digest}"
            )
        return digest

    def push_standin(
        self,
        tag: str,
        repository: str = "aidbox",
        version: str | None = None,
        fail_start: str = "",
        progress: build.Progress = print,
    ) -> str:
        """Push the Aidbox stand-in as release `version` (default: the tag) under
        <repository>:<tag>; with `fail_start` the release always fails at start with that
        termination message. Returns the manifest digest."""
        image = standin_release(version or tag, fail_start, progress)
        return self.push(repository, tag, image)

    def push_synthetic(self, tag: str, repository: str = "aidbox", version: str = "2510.1") -> str:
        """Push a release image nothing is built for (for pods kwok simulates: their image is
        never pulled) as <repository>:<tag>, labelled with `version`. Returns its digest."""
        return self.push(repository, tag, synthetic_release(version))

    def digest(self, repository: str, tag: str) -> str | None:
        """The manifest digest <repository>:<tag> names now, None if there is no such tag."""
        code, headers, _ = self._request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": _ACCEPT}
        )
        if code == 404:
            return None
        if code != 200:
            raise SandboxError(f"looking up {repository}:{tag} failed ({code})")
        return headers.get("Docker-Content-Digest")

    def tags(self, repository: str) -> list[str]:
        code, _, answer = self._request("GET", f"/v2/{repository}/tags/list")
        if code == 404:
            return []
        if code != 200:
            raise SandboxError(f"listing the tags of {repository} failed ({code}): {answer!r}")
        return list(json.loads(answer).get("tags") or [])

    def delete(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest (and with it every tag naming it)."""
        code, _, answer = self._request("DELETE", f"/v2/{repository}/manifests/{digest}")
        if code != 202:
            raise SandboxError(f"deleting {repository}@{digest} failed ({code}): {answer!r}")
