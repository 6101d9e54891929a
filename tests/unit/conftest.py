"""Unit-suite speed: a 2048-bit RSA key costs ~80 ms of CPU, and the fake-API tests generate the
JWT keys of a new cluster in almost every test. They check the keys' form, storage and
lifecycle, never that two clusters' keys differ, so the suite generates one key and reuses it.
Only the operator's keys module sees the stand-in; nothing else in the process changes."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from aidbox_operator.reconcile import auth_keys


@functools.cache
def _one_key(public_exponent: int, key_size: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=public_exponent, key_size=key_size)


def _cached_key(*, public_exponent: int, key_size: int, **_: Any) -> rsa.RSAPrivateKey:
    return _one_key(public_exponent, key_size)


@pytest.fixture(autouse=True)
def one_rsa_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_keys, "rsa", SimpleNamespace(generate_private_key=_cached_key))
