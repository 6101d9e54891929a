"""Shared JWT signing keys (and the Multibox cluster secret) for all replicas.

Generated once into `<name>-auth-keys` and never regenerated: regenerating would invalidate
every token users hold. Key material never leaves this module except into that Secret.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aidbox_operator.model import AidboxCluster
from aidbox_operator.render.labels import object_meta
from aidbox_operator.render.secrets import (
    CLUSTER_SECRET_KEY,
    PRIVATE_KEY,
    PUBLIC_KEY,
    SECRET_KEY,
    auth_keys_secret_name,
)


def _generate_values(keys: frozenset[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    if PRIVATE_KEY in keys or PUBLIC_KEY in keys:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        values[PRIVATE_KEY] = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        values[PUBLIC_KEY] = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
    if SECRET_KEY in keys:
        values[SECRET_KEY] = secrets.token_urlsafe(48)  # 64 characters, well over 32 bytes
    if CLUSTER_SECRET_KEY in keys:
        values[CLUSTER_SECRET_KEY] = secrets.token_urlsafe(48)
    return {k: v for k, v in values.items() if k in keys}


# RSA generation takes ~70-90 ms of CPU: off the event loop, on threads of its own so that it
# never delays the default executor others use.
_KEYGEN = ThreadPoolExecutor(max_workers=2, thread_name_prefix="keygen")


async def generate_key_data(keys: frozenset[str]) -> dict[str, str]:
    """Base64 Secret data for the given keys."""
    loop = asyncio.get_running_loop()
    values = await loop.run_in_executor(_KEYGEN, _generate_values, keys)
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def build_keys_secret(cluster: AidboxCluster, data: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": object_meta(cluster, auth_keys_secret_name(cluster)),
        "data": data,
    }
