"""Static checks of the Dockerfile (no Docker engine needed) and of the image tag everywhere."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PINNED_BASE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instr in _instructions():
        if instr[0] == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append(instr)
    return stages


def _version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_multi_stage_with_pinned_python_base() -> None:
    stages = _stages()
    assert len(stages) >= 2, "builder and runtime stages"
    for stage in stages:
        image = stage[0][1].split()[0]
        assert PINNED_BASE.match(image), f"base image {image} is not a pinned 3.11 slim tag"
        assert not image.endswith(":latest")
    runtime = stages[-1]
    assert any(i == "COPY" and "--from=builder" in a and "/opt/venv" in a for i, a in runtime), (
        "the runtime stage copies the venv from the builder"
    )
    assert any("AS BUILDER" in a.upper() for _, a in (s[0] for s in stages[:-1]))
    # No compilers or package installs in the runtime stage: only the venv.
    assert not any(i == "RUN" and ("apt-get" in a or "pip " in a) for i, a in runtime)


def test_installs_the_project_without_dev_extras() -> None:
    runs = [a for stage in _stages()[:-1] for i, a in stage if i == "RUN"]
    pip = [a for a in runs if "pip " in a]
    assert any(
        re.search(r"pip wheel\b.*\s\.(\s|$)", a) or re.search(r"pip install\b.*\s\.(\s|$)", a)
        for a in pip
    ), "the builder installs the project itself (`.`)"
    text = " ".join(a for _, a in _instructions())
    assert "[dev]" not in text and ".[" not in text, "no optional (dev) extras in the image"
    assert "requirements" not in text, "dependencies come from pyproject.toml's pins"


def test_runs_as_non_root_numeric_user_with_the_operator_entrypoint() -> None:
    runtime = _stages()[-1]
    users = [a for i, a in runtime if i == "USER"]
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER must be a numeric non-root uid, got {uid}"
    assert not gid or gid.isdigit()
    entrypoint = [a for i, a in runtime if i == "ENTRYPOINT"][-1]
    assert json.loads(entrypoint)[:2] == ["aidbox-operator", "run"]
    # The deploy/ pod runs as that same uid.
    deployment = yaml.safe_load((REPO / "deploy/base/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == int(uid)


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    lines = (REPO / ".dockerignore").read_text().split()
    assert "*" in lines and "!pyproject.toml" in lines and "!src/" in lines
    copies = [shlex.split(a)[:-1] for i, a in _instructions() if i == "COPY" and "--from" not in a]
    for sources in copies:
        for source in sources:
            assert source.rstrip("/") in ("pyproject.toml", "src"), source


def test_image_tag_matches_the_package_version() -> None:
    version = _version()
    deployment = yaml.safe_load((REPO / "deploy/base/deployment.yaml").read_text())
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.rsplit(":", 1)[1] == version, f"deploy/ uses {image}, package is {version}"
    chart = yaml.safe_load((REPO / "charts/aidbox-operator/Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts/aidbox-operator/values.yaml").read_text())
    assert chart["appVersion"] == version
    assert chart["version"] == version
    assert values["image"]["tag"] in ("", version), "empty means the chart's appVersion"
    assert values["image"]["repository"] == image.rsplit(":", 1)[0]
    assert f"aidbox-operator:{version}" in DOCKERFILE.read_text()
