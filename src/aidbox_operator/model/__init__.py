"""The AidboxCluster API: spec and status models, image versions, and the CRD built from them.

This layer has no I/O. Every other layer reads the resource through these models.
"""

from aidbox_operator.model.constants import API_GROUP, API_VERSION, KIND, PLURAL, SHORT_NAME
from aidbox_operator.model.spec import (
    AidboxCluster,
    AidboxClusterSpec,
    EnvFromRef,
    ObjectMeta,
    ProbeSpec,
    ServiceSpec,
)
from aidbox_operator.model.status import ClusterStatus, Condition
from aidbox_operator.model.version import ImageVersion, parse_image_version

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "PLURAL",
    "SHORT_NAME",
    "AidboxCluster",
    "AidboxClusterSpec",
    "ClusterStatus",
    "Condition",
    "EnvFromRef",
    "ImageVersion",
    "ObjectMeta",
    "ProbeSpec",
    "ServiceSpec",
    "parse_image_version",
]
