"""The registry client against a real registry (the sandbox's CNCF distribution registry on
127.0.0.1, plain HTTP): a tag resolves to the digest the registry stores and to the image's
version label, a moved tag resolves anew, a missing one is named. Synthetic images only: the
pods of this suite are simulated, so nothing is built or pulled."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aidbox_operator.runtime.registry import ImageReference, RegistryClient, ResolveError


@pytest.fixture(scope="module")
def repository() -> str:
    # A repository of this module's own: the registry is shared by the session.
    return f"resolve-{secrets.token_hex(3)}/aidbox"


@pytest.fixture
async def client(sandbox_registry: Any) -> AsyncIterator[RegistryClient]:
    registry = RegistryClient(plain_http=frozenset({sandbox_registry.host}), timeout=10)
    try:
        yield registry
    finally:
        await registry.close()


async def test_a_tag_resolves_to_the_stored_digest_and_version(
    sandbox_registry: Any, client: RegistryClient, repository: str
) -> None:
    pushed = sandbox_registry.push_synthetic("2510", repository, version="2510.1")
    image = sandbox_registry.reference(repository, "2510")
    resolved = await client.resolve(image)
    assert resolved.digest == pushed == sandbox_registry.digest(repository, "2510")
    assert resolved.version == "2510.1"
    # The pinned reference a pod would run names the same image, and resolves to itself.
    pinned = ImageReference.parse(image).pinned(resolved.digest)
    assert pinned == f"{sandbox_registry.host}/{repository}@{pushed}"
    again = await client.resolve(pinned)
    assert (again.digest, again.version) == (pushed, "2510.1")


async def test_moving_the_tag_moves_the_resolution(
    sandbox_registry: Any, client: RegistryClient, repository: str
) -> None:
    image = sandbox_registry.reference(repository, "stable")
    first = sandbox_registry.push_synthetic("stable", repository, version="2510.1")
    assert (await client.resolve(image)).digest == first
    moved = sandbox_registry.push_synthetic("stable", repository, version="2510.2")
    assert moved != first
    resolved = await client.resolve(image)
    assert (resolved.digest, resolved.version) == (moved, "2510.2")
    assert sandbox_registry.digest(repository, "stable") == moved


async def test_a_missing_tag_is_a_resolve_error_naming_it(
    sandbox_registry: Any, client: RegistryClient, repository: str
) -> None:
    sandbox_registry.push_synthetic("2510", repository)
    with pytest.raises(ResolveError) as caught:
        await client.resolve(sandbox_registry.reference(repository, "2601"))
    assert str(caught.value) == (
        f"resolving {sandbox_registry.host}/{repository}:2601: the tag '2601' does not exist "
        "(HTTP 404)"
    )
    with pytest.raises(ResolveError, match="does not exist"):
        await client.resolve(sandbox_registry.reference(f"{repository}-none", "2510"))


async def test_https_is_spoken_to_a_registry_not_listed_as_plain_http(
    sandbox_registry: Any, repository: str
) -> None:
    sandbox_registry.push_synthetic("2510", repository)
    client = RegistryClient(timeout=5)
    try:
        with pytest.raises(ResolveError, match="reading the tag '2510' failed"):
            await client.resolve(sandbox_registry.reference(repository, "2510"))
    finally:
        await client.close()
