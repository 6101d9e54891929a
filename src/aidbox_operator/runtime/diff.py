"""Does an observed object already hold what we would apply? Deciding this locally is what
lets a steady-state reconcile make no write requests at all."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity

# Fields whose values are quantities: a container's resources, an emptyDir's sizeLimit (user
# volumes are passed through as written, e.g. `sizeLimit: 1024Mi`, stored as `1Gi`).
QUANTITY_FIELDS = frozenset({"resources", "sizeLimit"})


def _same_quantity(desired: Any, observed: Any) -> bool:
    # The API server normalizes quantities ("1000m" is stored as "1").
    try:
        return bool(parse_quantity(desired) == parse_quantity(observed))
    except (ValueError, TypeError, InvalidOperation):
        return False


def _empty(value: Any) -> bool:
    # The API server omits zero values of non-pointer fields (`minReadySeconds: 0`, `false`).
    return value is None or value in ({}, [], 0, "") or value is False


def is_subset(desired: Any, observed: Any, *, quantities: bool = False) -> bool:
    """True when every field of `desired` has the same value in `observed`.

    Fields that only `observed` has (server defaults, status, other managers' fields) are
    ignored. Inside QUANTITY_FIELDS, quantities compare by value.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return _empty(desired) and _empty(observed)
        for key, value in desired.items():
            if key not in observed:
                if _empty(value):
                    continue
                return False
            quantity = quantities or key in QUANTITY_FIELDS
            if not is_subset(value, observed[key], quantities=quantity):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return _empty(desired) and _empty(observed)
        return all(
            is_subset(d, o, quantities=quantities) for d, o in zip(desired, observed, strict=True)
        )
    if desired == observed:
        return True
    if quantities and isinstance(desired, int | str | float | Decimal):
        return _same_quantity(desired, observed)
    return False
