"""Pure rendering: an AidboxCluster (plus facts reconcile looked up) -> the manifests to apply.

No I/O, no clock, no randomness: the same input always gives the same dicts.
"""

from aidbox_operator.render.cluster import RenderContext, effective_replicas, render_cluster
from aidbox_operator.render.deployment import build_deployment
from aidbox_operator.render.disruption import build_disruption_budget
from aidbox_operator.render.hashing import config_hash, stable_hash
from aidbox_operator.render.labels import common_labels, selector_labels, selector_string
from aidbox_operator.render.preview import render_preview
from aidbox_operator.render.secrets import auth_keys_secret_name, build_keys_secret
from aidbox_operator.render.service import build_service

__all__ = [
    "RenderContext",
    "auth_keys_secret_name",
    "build_deployment",
    "build_disruption_budget",
    "build_keys_secret",
    "build_service",
    "common_labels",
    "config_hash",
    "effective_replicas",
    "render_cluster",
    "render_preview",
    "selector_labels",
    "selector_string",
    "stable_hash",
]
