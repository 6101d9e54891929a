"""The sandbox's GitOps part without an API server: the Flux pins, and the git server serving a
repository the tests write through the file system (read-only over HTTP)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aidbox_sandbox import build
from aidbox_sandbox.gitserver import Repository
from aidbox_sandbox.kubeapi import free_port, http_ok


def test_flux_pins_match_the_constant() -> None:
    for target, module in zip(build.FLUX_TARGETS, build.FLUX_MODULES, strict=True):
        folder = Path(build.__file__).parent / "gomod" / target.name
        go_mod = (folder / "go.mod").read_text()
        assert f"require {module} v{build.FLUX_VERSION}\n" in go_mod
        assert f"{module}/api v{build.FLUX_VERSION} // indirect\n" in go_mod
        assert (folder / "go.sum").stat().st_size > 0
        assert target.packages == (module,)
    assert build.flux_bin_dir().name == f"flux-v{build.FLUX_VERSION}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root, port = tmp_path / "repos", free_port()
    root.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aidbox_sandbox.gitserver", str(root), str(port)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not http_ok(port, "/healthz"):
            assert time.monotonic() < deadline and proc.poll() is None, "git server not up"
            time.sleep(0.05)
        yield root, port
    finally:
        proc.terminate()
        proc.wait()


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )


def test_git_server_serves_each_commit_and_refuses_pushes(
    server: tuple[Path, int], tmp_path: Path
) -> None:
    root, port = server
    url = f"http://127.0.0.1:{port}/apps.git"
    repo = Repository(root / "apps.git", url).create()
    first = repo.commit({"a.yaml": "a: 1\n", "sub/b.yaml": "b: 1\n"}, "first")
    second = repo.commit({"c.yaml": "c: 1\n"}, "second: a and b removed")
    assert first != second
    clone = tmp_path / "clone"
    assert _git("clone", "--quiet", url, str(clone), cwd=tmp_path).returncode == 0
    assert _git("rev-parse", "HEAD", cwd=clone).stdout.strip() == second
    assert sorted(p.name for p in clone.iterdir() if p.name != ".git") == ["c.yaml"]
    (clone / "d.yaml").write_text("d: 1\n")
    _git("add", "d.yaml", cwd=clone)
    _git("-c", "user.name=t", "-c", "user.email=t@127.0.0.1", "commit", "-qm", "d", cwd=clone)
    pushed = _git("push", "--quiet", "origin", "HEAD:main", cwd=clone)
    assert pushed.returncode != 0 and "403" in pushed.stderr, pushed.stderr


def _readme_documents(section: str) -> list[dict[str, object]]:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in body.split("```yaml\n")[1:]]
    return [d for b in blocks for d in yaml.safe_load_all(b)]


def test_readme_flux_objects_are_the_ones_the_gitops_tests_run() -> None:
    from gitops.flux_objects import git_repository, kustomization

    docs = {d["kind"]: d for d in _readme_documents("GitOps")}
    tested = {
        "GitRepository": git_repository("aidbox", "url"),
        "Kustomization": kustomization("aidbox", "1s"),
    }
    # The tests shorten the timings and point at the sandbox's git server; the rest is the same.
    timings = {"interval", "retryInterval", "timeout", "url"}
    for kind, test_doc in tested.items():
        shown = docs[kind]
        assert shown["apiVersion"] == test_doc["apiVersion"]
        assert set(shown["spec"]) == set(test_doc["spec"]), kind
        for key in set(test_doc["spec"]) - timings:
            assert shown["spec"][key] == test_doc["spec"][key], (kind, key)
    assert docs["Application"]["spec"]["syncPolicy"]["automated"] == {
        "prune": True,
        "selfHeal": True,
    }
