"""The registry client (runtime/registry.py): image references, pull secrets, and resolving tags
against an in-memory registry and token service served by httpx.MockTransport (no network)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from aidbox_operator.runtime.registry import (
    DOCKER_HUB,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    VERSION_LABEL,
    ImageReference,
    RegistryClient,
    ResolveError,
    credentials_from_dockerconfig,
)

HOST = "registry.example"
REALM = "https://auth.example/token"
USER, PASSWORD = "bob-the-user", "s3cret-pass"
LOGIN = {HOST: (USER, PASSWORD)}
DIGEST = "sha256:" + "ab" * 32


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class FakeRegistry:
    """One registry and its token service. `auth` is "none", "basic" or "bearer"; with a
    login set, only that login gets in (bearer: gets a token), else anyone does."""

    def __init__(self, auth: str = "none", login: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.login = login
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.requests: list[httpx.Request] = []
        self.tokens: list[str] = []  # issued, in order; all valid unless revoked
        self.revoked: set[str] = set()
        self.expires_in: int | None = 300
        self.send_digest = True

    # -- content
    def add_image(self, repo: str, tag: str | None, version: str | None, arch: str = "") -> str:
        labels = {VERSION_LABEL: version} if version is not None else None
        config = json.dumps({"architecture": arch or "amd64", "config": {"Labels": labels}})
        self.blobs[(repo, _digest(config.encode()))] = config.encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": _digest(config.encode()), "size": 1},
            "layers": [],
        }
        return self.add_manifest(repo, tag, OCI_MANIFEST, json.dumps(manifest).encode())

    def add_manifest(self, repo: str, tag: str | None, kind: str, body: bytes) -> str:
        digest = _digest(body)
        self.manifests[(repo, digest)] = (kind, body)
        if tag:
            self.manifests[(repo, tag)] = (kind, body)
        return digest

    def add_index(self, repo: str, tag: str, entries: list[dict[str, Any]]) -> str:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        return self.add_manifest(repo, tag, OCI_INDEX, body.encode())

    # -- HTTP
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "auth.example":
            return self._token(request)
        if request.url.host == "storage.example":
            return httpx.Response(200, content=self.blobs[("app/web", request.url.params["d"])])
        refusal = self._refusal(request, request.url.path.split("/")[2:-2])
        if refusal is not None:
            return refusal
        return self._content(request)

    def _refusal(self, request: httpx.Request, repo_parts: list[str]) -> httpx.Response | None:
        given = request.headers.get("authorization", "")
        if self.auth == "basic" and (given != _basic(*self.login) if self.login else not given):
            return httpx.Response(401, headers={"WWW-Authenticate": f'Basic realm="{HOST}"'})
        valid = {f"Bearer {t}" for t in self.tokens if t not in self.revoked}
        if self.auth == "bearer" and given not in valid:
            scope = f"repository:{'/'.join(repo_parts)}:pull"
            challenge = f'Bearer realm="{REALM}",service="{HOST}",scope="{scope}"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        given = request.headers.get("authorization")
        if self.login and given != _basic(*self.login):
            return httpx.Response(401, json={"details": "incorrect username or password"})
        token = f"token-{len(self.tokens) + 1}"
        self.tokens.append(token)
        body: dict[str, Any] = {"token": token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return httpx.Response(200, json=body)

    def _content(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        repo, kind, reference = "/".join(parts[2:-2]), parts[-2], parts[-1]
        if kind == "blobs":
            if (repo, reference) not in self.blobs:
                return httpx.Response(404)
            return httpx.Response(200, content=self.blobs[(repo, reference)])
        if (repo, reference) not in self.manifests:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        media_type, body = self.manifests[(repo, reference)]
        headers = {"Content-Type": media_type}
        if self.send_digest:
            headers["Docker-Content-Digest"] = _digest(body)
        return httpx.Response(200, content=body, headers=headers)

    def paths(self) -> list[str]:
        return [f"{r.url.host}{r.url.path}" for r in self.requests]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(fake: FakeRegistry, clock: Callable[[], float] | None = None) -> RegistryClient:
    if clock is None:
        return RegistryClient(transport=fake.transport())
    return RegistryClient(transport=fake.transport(), clock=clock)


# ---------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag", "digest"),
    [
        ("nginx", DOCKER_HUB, "library/nginx", "latest", None),
        ("nginx:1.27", DOCKER_HUB, "library/nginx", "1.27", None),
        ("library/nginx:1.27", DOCKER_HUB, "library/nginx", "1.27", None),
        ("docker.io/nginx", DOCKER_HUB, "library/nginx", "latest", None),
        ("index.docker.io/library/nginx:1", DOCKER_HUB, "library/nginx", "1", None),
        ("registry-1.docker.io/nginx:1", DOCKER_HUB, "library/nginx", "1", None),
        ("healthsamurai/aidboxone:2510", DOCKER_HUB, "healthsamurai/aidboxone", "2510", None),
        (
            "docker.io/healthsamurai/aidboxone",
            DOCKER_HUB,
            "healthsamurai/aidboxone",
            "latest",
            None,
        ),
        ("ghcr.io/org/team/app:v2", "ghcr.io", "org/team/app", "v2", None),
        ("127.0.0.1:5000/aidbox:2510.1", "127.0.0.1:5000", "aidbox", "2510.1", None),
        ("registry.example:8443/a/b", "registry.example:8443", "a/b", "latest", None),
        ("localhost/app:dev", "localhost", "app", "dev", None),
        ("localhost:5000/app", "localhost:5000", "app", "latest", None),
        ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
        (f"nginx@{DIGEST}", DOCKER_HUB, "library/nginx", None, DIGEST),
        (f"ghcr.io/o/app:1.0@{DIGEST}", "ghcr.io", "o/app", "1.0", DIGEST),
        (f"localhost:5000/app@{DIGEST}", "localhost:5000", "app", None, DIGEST),
        # A first component without '.', ':' or 'localhost' is a Docker Hub namespace.
        ("myhost/app:1", DOCKER_HUB, "myhost/app", "1", None),
    ],
)
def test_parse(image: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = ImageReference.parse(image)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize(
    "image",
    [
        "",
        "nginx:",
        "nginx@",
        "Nginx:1",
        "a//b:1",
        "ghcr.io/:1",
        "nginx:bad/../tag",
        "nginx@sha256:short",
        "nginx@md5:" + "0" * 32,
        "ghcr.io/a/../b:1",
        "host name.example/app:1",
        "nginx:1?x=y",
    ],
)
def test_parse_refuses_what_no_registry_serves(image: str) -> None:
    with pytest.raises(ResolveError, match="not a valid image reference"):
        ImageReference.parse(image)


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("healthsamurai/aidboxone:latest", f"healthsamurai/aidboxone@{DIGEST}"),
        ("healthsamurai/aidboxone", f"healthsamurai/aidboxone@{DIGEST}"),
        ("nginx:1.27", f"nginx@{DIGEST}"),
        ("docker.io/library/nginx:1", f"docker.io/library/nginx@{DIGEST}"),
        ("127.0.0.1:5000/aidbox:2510", f"127.0.0.1:5000/aidbox@{DIGEST}"),
        (f"ghcr.io/o/app:1@sha256:{'0' * 64}", f"ghcr.io/o/app@{DIGEST}"),
    ],
)
def test_pinned_keeps_the_name_as_written(image: str, pinned: str) -> None:
    assert ImageReference.parse(image).pinned(DIGEST) == pinned


def test_pinned_of_a_reference_built_by_hand_names_its_registry() -> None:
    assert ImageReference(DOCKER_HUB, "library/nginx", "1", None).pinned(DIGEST) == (
        f"docker.io/library/nginx@{DIGEST}"
    )
    assert ImageReference("ghcr.io", "o/app", "1", None).pinned(DIGEST) == f"ghcr.io/o/app@{DIGEST}"
    # The spelling does not make two references different.
    assert ImageReference.parse("nginx") == ImageReference.parse("docker.io/library/nginx:latest")


# ---------------------------------------------------------------- pull secrets


def _dockerconfig(auths: dict[str, Any]) -> bytes:
    return json.dumps({"auths": auths}).encode()


def test_dockerconfig_auth_and_username_password() -> None:
    config = _dockerconfig(
        {
            "ghcr.io": {"auth": base64.b64encode(b"alice:pa:ss").decode()},
            "registry.example:5000": {"username": "bob", "password": "pw"},
            # `auth` wins over username/password, as the kubelet reads it.
            "quay.io": {
                "username": "x",
                "password": "y",
                "auth": base64.b64encode(b"q:r").decode(),
            },
            "tokens.example": {"identitytoken": "abc"},  # nothing to log in with
            "empty.example": {"auth": ""},
        }
    )
    assert credentials_from_dockerconfig(config) == {
        "ghcr.io": ("alice", "pa:ss"),
        "registry.example:5000": ("bob", "pw"),
        "quay.io": ("q", "r"),
    }


@pytest.mark.parametrize(
    "key",
    [
        "https://index.docker.io/v1/",
        "index.docker.io",
        "docker.io",
        "registry-1.docker.io",
        "https://registry-1.docker.io",
    ],
)
def test_dockerconfig_docker_hub_aliases(key: str) -> None:
    config = _dockerconfig({key: {"username": "u", "password": "p"}})
    assert credentials_from_dockerconfig(config) == {DOCKER_HUB: ("u", "p")}


def test_dockerconfig_keys_lose_scheme_and_path() -> None:
    config = _dockerconfig(
        {
            "https://registry.example:8443/v2/": {"username": "a", "password": "1"},
            "http://plain.example/some/path": {"username": "b", "password": "2"},
        }
    )
    assert credentials_from_dockerconfig(config) == {
        "registry.example:8443": ("a", "1"),
        "plain.example": ("b", "2"),
    }


@pytest.mark.parametrize(
    "document",
    [
        b"{not json s3cret-pass",
        b'{"s3cret-pass": 1}',
        b'{"auths": ["s3cret-pass"]}',
        b"[]",
        _dockerconfig({HOST: {"auth": "!!s3cret-pass!!"}}),
        _dockerconfig({HOST: {"auth": base64.b64encode(b"no-colon-s3cret-pass").decode()}}),
    ],
)
def test_dockerconfig_errors_quote_nothing_of_the_secret(document: bytes) -> None:
    with pytest.raises(ResolveError) as caught:
        credentials_from_dockerconfig(document)
    assert "s3cret" not in str(caught.value)
    # Nor does a chained parser error (a traceback would print it).
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


# ---------------------------------------------------------------- resolving


async def test_resolves_a_tag_to_the_manifest_digest_and_version() -> None:
    fake = FakeRegistry()
    digest = fake.add_image("app/web", "stable", "2510.3")
    client = _client(fake)
    resolved = await client.resolve(f"{HOST}/app/web:stable")
    await client.close()
    assert (resolved.digest, resolved.version) == (digest, "2510.3")
    manifest_request = fake.requests[0]
    assert str(manifest_request.url) == f"https://{HOST}/v2/app/web/manifests/stable"
    accepted = {a.strip() for a in manifest_request.headers["accept"].split(",")}
    assert accepted == {OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST}
    assert "authorization" not in manifest_request.headers
    config_digest = json.loads(fake.manifests[("app/web", digest)][1])["config"]["digest"]
    assert fake.paths()[1] == f"{HOST}/v2/app/web/blobs/{config_digest}"


async def test_version_is_empty_without_the_label() -> None:
    fake = FakeRegistry()
    fake.add_image("app/web", "1", None)
    client = _client(fake)
    assert (await client.resolve(f"{HOST}/app/web:1")).version == ""
    await client.close()


async def test_without_a_digest_header_the_digest_is_the_body_hash() -> None:
    fake = FakeRegistry()
    fake.send_digest = False
    digest = fake.add_image("app/web", "1", "2510.1")
    client = _client(fake)
    assert (await client.resolve(f"{HOST}/app/web:1")).digest == digest
    await client.close()


async def test_a_digest_header_that_is_not_the_body_hash_fails() -> None:
    fake = FakeRegistry()
    fake.add_image("app/web", "1", "2510.1")

    def lying(request: httpx.Request) -> httpx.Response:
        response = fake.handle(request)
        if "/manifests/" in request.url.path:
            response.headers["Docker-Content-Digest"] = DIGEST
        return response

    client = RegistryClient(transport=httpx.MockTransport(lying))
    with pytest.raises(ResolveError, match=f"announced as {DIGEST} but its content hashes to"):
        await client.resolve(f"{HOST}/app/web:1")
    await client.close()


async def test_digest_references_are_read_by_digest_and_checked() -> None:
    fake = FakeRegistry()
    digest = fake.add_image("app/web", None, "2510.2")
    client = _client(fake)
    resolved = await client.resolve(f"{HOST}/app/web:ignored@{digest}")
    assert resolved.digest == digest and resolved.version == "2510.2"
    assert fake.paths()[0] == f"{HOST}/v2/app/web/manifests/{digest}"
    # A registry serving other content under the digest is caught.
    fake.send_digest = False
    fake.manifests[("app/web", DIGEST)] = fake.manifests[("app/web", digest)]
    with pytest.raises(ResolveError, match="served"):
        await client.resolve(f"{HOST}/app/web@{DIGEST}")
    await client.close()


async def test_index_pins_the_index_and_reads_the_amd64_config() -> None:
    fake = FakeRegistry()
    arm = fake.add_image("app/web", None, "arm-build", arch="arm64")
    amd = fake.add_image("app/web", None, "2510.4")
    attestation = fake.add_image("app/web", None, "attestation")
    index = fake.add_index(
        "app/web",
        "latest",
        [
            {
                "mediaType": OCI_MANIFEST,
                "digest": arm,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": amd,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": attestation,
                "platform": {"os": "unknown", "architecture": "unknown"},
                "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
            },
        ],
    )
    client = _client(fake)
    resolved = await client.resolve(f"{HOST}/app/web")
    assert (resolved.digest, resolved.version) == (index, "2510.4")
    assert fake.paths()[:2] == [
        f"{HOST}/v2/app/web/manifests/latest",
        f"{HOST}/v2/app/web/manifests/{amd}",
    ]
    await client.close()


async def test_index_without_amd64_reads_its_first_image() -> None:
    fake = FakeRegistry()
    attestation = fake.add_image("app/web", None, "attestation")
    arm = fake.add_image("app/web", None, "arm-build", arch="arm64")
    s390 = fake.add_image("app/web", None, "s390-build", arch="s390x")
    entries = [
        {
            "digest": attestation,
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        },
        {"digest": arm, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": s390, "platform": {"os": "linux", "architecture": "s390x"}},
    ]
    body = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    fake.add_manifest("app/web", "multi", DOCKER_MANIFEST_LIST, body)
    client = _client(fake)
    assert (await client.resolve(f"{HOST}/app/web:multi")).version == "arm-build"
    fake.add_index("app/web", "empty", [])
    with pytest.raises(ResolveError, match="names no manifest"):
        await client.resolve(f"{HOST}/app/web:empty")
    await client.close()


async def test_a_missing_tag_is_named() -> None:
    fake = FakeRegistry()
    client = _client(fake)
    with pytest.raises(ResolveError) as caught:
        await client.resolve(f"{HOST}/app/web:2601")
    await client.close()
    assert str(caught.value) == (
        f"resolving {HOST}/app/web:2601: the tag '2601' does not exist (HTTP 404)"
    )


async def test_plain_http_only_for_the_listed_hosts() -> None:
    fake = FakeRegistry()
    fake.add_image("app/web", "1", "v")
    client = RegistryClient(plain_http=frozenset({f"{HOST}:5000"}), transport=fake.transport())
    await client.resolve(f"{HOST}:5000/app/web:1")
    await client.resolve(f"{HOST}/app/web:1")
    await client.close()
    schemes = [(r.url.scheme, r.url.port) for r in fake.requests]
    assert schemes == [("http", 5000), ("http", 5000), ("https", None), ("https", None)]


# ---------------------------------------------------------------- authentication


async def test_bearer_challenge_token_and_its_cache() -> None:
    fake, clock = FakeRegistry("bearer", (USER, PASSWORD)), Clock()
    fake.expires_in = 300
    fake.add_image("app/web", "1", "2510.1")
    client = _client(fake, clock)
    assert (await client.resolve(f"{HOST}/app/web:1", LOGIN)).version == "2510.1"
    token_request = fake.requests[1]
    assert token_request.url.host == "auth.example"
    assert dict(token_request.url.params) == {"service": HOST, "scope": "repository:app/web:pull"}
    assert token_request.headers["authorization"] == _basic(USER, PASSWORD)
    # The 401, the token, the manifest again; the blob with the token already known.
    assert [r.headers.get("authorization") for r in fake.requests[2:]] == ["Bearer token-1"] * 2
    assert len(fake.requests) == 4
    # Within expires_in the token is reused: no challenge, no token request.
    clock.now += 299
    await client.resolve(f"{HOST}/app/web:1", LOGIN)
    assert len(fake.requests) == 6 and fake.tokens == ["token-1"]
    # After it: a new token.
    clock.now += 2
    await client.resolve(f"{HOST}/app/web:1", LOGIN)
    assert fake.tokens == ["token-1", "token-2"]
    await client.close()


async def test_token_lifetime_defaults_to_a_minute_and_access_token_is_read() -> None:
    fake, clock = FakeRegistry("bearer"), Clock()
    fake.expires_in = None
    fake.add_image("app/web", "1", "2510.1")

    def oauth_style(request: httpx.Request) -> httpx.Response:
        response = fake.handle(request)
        if request.url.host == "auth.example":
            return httpx.Response(200, json={"access_token": json.loads(response.content)["token"]})
        return response

    client = RegistryClient(transport=httpx.MockTransport(oauth_style), clock=clock)
    await client.resolve(f"{HOST}/app/web:1")  # anonymous: no Authorization to the realm
    assert "authorization" not in fake.requests[1].headers
    clock.now += 59
    await client.resolve(f"{HOST}/app/web:1")
    assert fake.tokens == ["token-1"]
    clock.now += 2
    await client.resolve(f"{HOST}/app/web:1")
    assert fake.tokens == ["token-1", "token-2"]
    await client.close()


async def test_tokens_are_kept_per_repository_and_per_login() -> None:
    fake = FakeRegistry("bearer")
    fake.add_image("app/web", "1", "a")
    fake.add_image("app/api", "1", "b")
    client = _client(fake)
    await client.resolve(f"{HOST}/app/web:1")
    await client.resolve(f"{HOST}/app/api:1")
    assert len(fake.tokens) == 2
    # A token got with a login does not serve a resolution without it, nor the reverse.
    await client.resolve(f"{HOST}/app/web:1", LOGIN)
    assert len(fake.tokens) == 3
    await client.resolve(f"{HOST}/app/web:1")
    assert len(fake.tokens) == 3
    await client.close()


async def test_a_refused_cached_token_is_replaced_once() -> None:
    fake = FakeRegistry("bearer")
    fake.add_image("app/web", "1", "2510.1")
    client = _client(fake)
    await client.resolve(f"{HOST}/app/web:1")
    fake.revoked.add("token-1")
    assert (await client.resolve(f"{HOST}/app/web:1")).version == "2510.1"
    assert fake.tokens == ["token-1", "token-2"]
    await client.close()


async def test_basic_challenge_is_answered_with_the_login() -> None:
    fake = FakeRegistry("basic", (USER, PASSWORD))
    fake.add_image("app/web", "1", "2510.1")
    client = _client(fake)
    assert (await client.resolve(f"{HOST}/app/web:1", LOGIN)).version == "2510.1"
    assert fake.requests[1].headers["authorization"] == _basic(USER, PASSWORD)
    # Logins are per registry: another registry's login is not sent here.
    with pytest.raises(ResolveError) as caught:
        await client.resolve(f"{HOST}/app/web:1", {"other.example": (USER, PASSWORD)})
    assert str(caught.value).endswith(f"(HTTP 401); no credentials for {HOST} were given")
    await client.close()


async def test_a_token_service_in_clear_text_gets_no_login() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        challenge = 'Bearer realm="http://auth.example/token",service="x"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    client = RegistryClient(transport=httpx.MockTransport(handle))
    with pytest.raises(ResolveError, match="is not https"):
        await client.resolve(f"{HOST}/app/web:1", LOGIN)
    await client.close()


@pytest.mark.parametrize(
    ("auth", "login", "message"),
    [
        ("bearer", ("bob-the-user", "wrong"), "the credentials for registry.example were refused"),
        ("basic", ("bob-the-user", "wrong"), "(HTTP 401); the credentials for"),
        ("basic", None, "(HTTP 401); no credentials for registry.example were given"),
    ],
)
async def test_refusals_name_the_registry_but_no_credential(
    auth: str, login: tuple[str, str] | None, message: str
) -> None:
    fake = FakeRegistry(auth, ("bob-the-user", "s3cret-pass"))
    fake.add_image("app/web", "1", "2510.1")
    client = _client(fake)
    with pytest.raises(ResolveError) as caught:
        await client.resolve(f"{HOST}/app/web:1", {HOST: login} if login else None)
    await client.close()
    text = str(caught.value)
    assert message in text and f"{HOST}/app/web:1" in text
    for secret in ("bob-the-user", "s3cret-pass", "wrong", _basic("bob-the-user", "wrong")[6:]):
        assert secret not in text


async def test_transport_failures_are_resolve_errors_without_credentials() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler, expected in ((refuse, "ConnectError"), (stall, "timed out after 2 s")):
        client = RegistryClient(timeout=2, transport=httpx.MockTransport(handler))
        with pytest.raises(ResolveError) as caught:
            await client.resolve(f"{HOST}/app/web:1", LOGIN)
        await client.close()
        assert expected in str(caught.value) and f"{HOST}/app/web:1" in str(caught.value)
        assert USER not in str(caught.value) and PASSWORD not in str(caught.value)


async def test_redirects_are_followed_for_blobs_only_and_carry_no_login() -> None:
    fake = FakeRegistry("basic", (USER, PASSWORD))
    fake.add_image("app/web", "1", "2510.1")

    def to_storage(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path and request.headers.get("authorization"):
            digest = request.url.path.rsplit("/", 1)[1]
            location = f"https://storage.example/bucket?d={digest}"
            return httpx.Response(307, headers={"Location": location})
        return fake.handle(request)

    client = RegistryClient(transport=httpx.MockTransport(to_storage))
    assert (await client.resolve(f"{HOST}/app/web:1", LOGIN)).version == "2510.1"
    storage = fake.requests[-1]
    assert storage.url.host == "storage.example" and "authorization" not in storage.headers
    await client.close()

    def manifest_moved(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"Location": "https://elsewhere.example/m"})

    client = RegistryClient(transport=httpx.MockTransport(manifest_moved))
    with pytest.raises(ResolveError, match="answered HTTP 307 for the tag '1'"):
        await client.resolve(f"{HOST}/app/web:1")
    await client.close()


async def test_oversized_and_odd_answers_fail_cleanly() -> None:
    fake = FakeRegistry()
    fake.add_manifest("app/web", "huge", OCI_MANIFEST, b" " * (4 * 1024 * 1024 + 1))
    fake.add_manifest(
        "app/web", "schema1", "application/vnd.docker.distribution.manifest.v1+json", b"{}"
    )
    fake.add_manifest("app/web", "nojson", OCI_MANIFEST, b"<html>")
    client = _client(fake)
    for tag, message in (
        ("huge", "is over 4194304 bytes"),
        ("schema1", "has media type 'application/vnd.docker.distribution.manifest.v1+json'"),
        ("nojson", "is not a JSON object"),
    ):
        with pytest.raises(ResolveError, match=re.escape(message)):
            await client.resolve(f"{HOST}/app/web:{tag}")
    await client.close()
