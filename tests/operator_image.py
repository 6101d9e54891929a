"""The operator as deploy/ installs it, on the sandbox's real kubelet nodes: the image name
deploy/ uses (the package version as its tag), built from the Dockerfile, and the changes a
Deployment from deploy/ needs to run there: real nodes are tainted so that only pods meant for
them land there, and tag pinning is off, since the sandbox has no route to public registries
(the clusters these tests make name public images that no pod pulls)."""

from __future__ import annotations

import tomllib
from typing import Any

from aidbox_sandbox.nodeconfig import REAL_NODE_LABEL
from kube_helpers import REPO


def image_reference() -> str:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return f"docker.io/library/aidbox-operator:{version}"


def load_image(real_nodes: Any) -> None:
    """Build the image (cached by its inputs) and load it into every real node."""
    from aidbox_sandbox.operatorimage import build_operator_image

    real_nodes.import_image(build_operator_image(REPO, image_reference()))


def on_real_nodes(deployment: dict[str, Any]) -> dict[str, Any]:
    pod = deployment["spec"]["template"]["spec"]
    pod["nodeSelector"] = {REAL_NODE_LABEL: "true"}
    pod["tolerations"] = [{"key": REAL_NODE_LABEL, "operator": "Exists"}]
    container = pod["containers"][0]
    assert container["image"] == image_reference().removeprefix("docker.io/library/")
    args = container["args"]
    assert "--image-pinning=registry" in args, args
    container["args"] = [
        "--image-pinning=off" if a.startswith("--image-pinning") else a for a in args
    ]
    return deployment


def set_watched_namespace(deployment: dict[str, Any], namespace: str) -> None:
    for env in deployment["spec"]["template"]["spec"]["containers"][0]["env"]:
        if env["name"] == "WATCH_NAMESPACE":
            env["value"] = namespace
