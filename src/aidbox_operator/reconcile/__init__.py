"""I/O: observe the cluster, apply what differs, report status. The only layer that talks to
the Kubernetes API."""

from aidbox_operator.reconcile.cluster import ClusterReconciler
from aidbox_operator.reconcile.controller import Controller
from aidbox_operator.reconcile.kube import ApiError, KubeClient, connect
from aidbox_operator.reconcile.result import PassResult

__all__ = ["ApiError", "ClusterReconciler", "Controller", "KubeClient", "PassResult", "connect"]
