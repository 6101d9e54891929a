"""AidboxReleaseChannels in tests on the sandbox: create, move, read, delete."""

from __future__ import annotations

from typing import Any

from kubernetes import client

GROUP, VERSION, PLURAL = "aidbox.io", "v1alpha1", "aidboxreleasechannels"
REPO = "healthsamurai/aidboxone"
# The release the sandbox keeps broken: its pods exit at start like a failed migration
# (sandbox/src/aidbox_sandbox/stages/pod-fail-start.yaml).
BROKEN = f"{REPO}:2510.999"
WAVES = [
    {"name": "canary", "matchLabels": {"tier": "canary"}},
    {"name": "staging", "matchLabels": {"tier": "staging"}},
    {"name": "rest"},
]


def create_channel(api: Any, name: str, image: str, waves: list[dict[str, Any]] = WAVES) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AidboxReleaseChannel",
        "metadata": {"name": name},
        "spec": {"image": image, "waves": waves},
    }
    client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body)


def move_channel(api: Any, name: str, image: str) -> None:
    client.CustomObjectsApi(api).patch_cluster_custom_object(
        GROUP, VERSION, PLURAL, name, {"spec": {"image": image}}
    )


def get_channel(api: Any, name: str) -> dict[str, Any]:
    body: dict[str, Any] = client.CustomObjectsApi(api).get_cluster_custom_object(
        GROUP, VERSION, PLURAL, name
    )
    return body


def channel_status(api: Any, name: str) -> dict[str, Any]:
    return dict(get_channel(api, name).get("status") or {})


def delete_channel(api: Any, name: str) -> None:
    try:
        client.CustomObjectsApi(api).delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    except client.ApiException as err:
        if err.status != 404:
            raise
