"""Aidbox logic on the runtime: one pass per cluster (observe, judge, apply what differs,
report), its children, the generated keys, and what the informers feed it."""

from aidbox_operator.reconcile.cluster import ClusterReconciler
from aidbox_operator.reconcile.controller import Controller
from aidbox_operator.reconcile.result import PassResult

__all__ = ["ClusterReconciler", "Controller", "PassResult"]
