"""I/O: observe the cluster, apply what differs, report status. The only layer that talks to
the Kubernetes API."""

from aidbox_operator.reconcile.cluster import ClusterReconciler, PassResult
from aidbox_operator.reconcile.controller import Controller
from aidbox_operator.reconcile.kube import ApiError, KubeClient, connect

__all__ = ["ApiError", "ClusterReconciler", "Controller", "KubeClient", "PassResult", "connect"]
