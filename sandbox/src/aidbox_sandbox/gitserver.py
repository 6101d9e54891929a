"""A read-only git server on 127.0.0.1 for the GitOps tests: Git's own smart-HTTP CGI program
(`git http-backend`) behind a small threaded HTTP server. Flux's source-controller clones from
it over plain HTTP; tests write to the bare repositories through the file system (git push to
the folder), so the server needs no receive-pack and no authentication.

Run as `python -m aidbox_sandbox.gitserver ROOT PORT`: ROOT holds bare repositories
(<name>.git), each served at http://127.0.0.1:PORT/<name>.git. GET /healthz answers 200.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .errors import SandboxError

_GIT_PACKAGE = "git"


def git_binary() -> str:
    """Path of git, or SandboxError naming the Debian package to install."""
    found = shutil.which("git")
    if not found:
        raise SandboxError(f"the GitOps tests need git: apt-get install -y {_GIT_PACKAGE}")
    return found


class _Handler(BaseHTTPRequestHandler):
    root: Path
    git: str
    protocol_version = "HTTP/1.0"  # one response per connection: no chunked bodies to write

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._reply(200, b"ok\n")
            return
        self._backend()

    def do_POST(self) -> None:
        self._backend()

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _backend(self) -> None:
        path, _, query = self.path.partition("?")
        # Writes come through the file system only: refuse receive-pack outright.
        if "git-receive-pack" in path or "git-receive-pack" in query:
            self._reply(403, b"read-only\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": urllib.parse.unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": self.client_address[0],
        }
        result = subprocess.run(
            [self.git, "http-backend"], input=body, capture_output=True, env=env, check=False
        )
        self._relay(result.stdout)

    def _relay(self, output: bytes) -> None:
        """Turn the CGI answer (headers, blank line, body) into an HTTP response."""
        head, _, body = output.partition(b"\r\n\r\n")
        if not _:
            head, _, body = output.partition(b"\n\n")
        code, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                code = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


class Repository:
    """A bare repository under the server's root, written through a work tree of its own:
    commit() replaces the files under `folder` (a whole desired state) and pushes to main."""

    def __init__(self, bare: Path, url: str) -> None:
        self.bare = bare
        self.url = url
        self.work = bare.with_suffix(".work")

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        identity = ["-c", "user.name=aidbox-sandbox", "-c", "user.email=sandbox@127.0.0.1"]
        result = subprocess.run(
            [git_binary(), *identity, *args],
            cwd=cwd or self.work,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def create(self) -> Repository:
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        self._git(
            "init",
            "--quiet",
            "--bare",
            "--initial-branch=main",
            str(self.bare),
            cwd=self.bare.parent,
        )
        self._git("init", "--quiet", "--initial-branch=main", str(self.work), cwd=self.bare.parent)
        self._git("remote", "add", "origin", str(self.bare))
        return self

    def commit(self, files: dict[str, str], message: str, folder: str = "") -> str:
        """Make `folder` hold exactly `files` (path -> text), commit, push; return the sha."""
        target = self.work / folder
        if target.exists():
            shutil.rmtree(target) if folder else self._clear()
        for name, text in files.items():
            path = target / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self._git("add", "--all")
        self._git("commit", "--quiet", "--allow-empty", "--message", message)
        self._git("push", "--quiet", "origin", "HEAD:main")
        return self._git("rev-parse", "HEAD")

    def head(self) -> str:
        return self._git("rev-parse", "HEAD")

    def _clear(self) -> None:
        for entry in self.work.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def serve(root: Path, port: int) -> None:
    handler = type("Handler", (_Handler,), {"root": root, "git": git_binary()})
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
