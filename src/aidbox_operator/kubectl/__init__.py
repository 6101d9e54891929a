"""`kubectl aidbox`: the on-call engineer's view of AidboxClusters (status, versions), the
actions that go through the operator (pause, resume, restart), and a support bundle (report)
that never carries a Secret value."""
