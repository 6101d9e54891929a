"""Generic controller plumbing: API client, informers, object cache, work queue, workers,
leader election and Event posting. Knows nothing of Aidbox: a controller for any other
resource could be written on this package alone."""

from aidbox_operator.runtime.client import ApiError, KubeClient, NotLeaderError, connect
from aidbox_operator.runtime.kinds import ResourceKind
from aidbox_operator.runtime.workers import DEFAULT_WORKERS, Outcome, Workers

__all__ = [
    "DEFAULT_WORKERS",
    "ApiError",
    "KubeClient",
    "NotLeaderError",
    "Outcome",
    "ResourceKind",
    "Workers",
    "connect",
]
