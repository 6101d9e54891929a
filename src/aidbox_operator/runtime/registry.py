"""Resolving an image tag to the digest it names now, over the OCI distribution API.

A moving tag (`latest`, `stable`, `2510`) can name another image tomorrow; a digest cannot. The
operator asks the registry once what a tag points to and gives pods `<name>@<digest>`, so every
replica of a rollout runs the same bytes however the tag moves meanwhile.

One resolution reads the tag's manifest (for a multi-platform image: the index, then its
linux/amd64 manifest) and the image config, whose `org.opencontainers.image.version` label says
which release the digest is. Registries that want a login answer 401 with a challenge: Basic, or
Bearer (a token service hands out a short-lived token for the repository, kept here until it
expires). Nothing is written anywhere; credentials come from image pull Secrets
(`credentials_from_dockerconfig`) and appear in no error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

DOCKER_HUB = "registry-1.docker.io"
# Names of Docker Hub as image references and docker config files write it.
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})
VERSION_LABEL = "org.opencontainers.image.version"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
_INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
_MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
# Pods in the clusters this operator serves run linux/amd64 unless told otherwise.
_PLATFORM = ("linux", "amd64")

# The distribution spec caps manifests at 4 MiB; an image config is far smaller. A registry
# sending more is not one to trust with memory.
MAX_BODY_BYTES = 4 * 1024 * 1024
# The token spec's default lifetime when a token service does not say.
DEFAULT_TOKEN_SECONDS = 60.0

# The grammar of the distribution spec: whatever reaches a URL path has been checked by these,
# so an image string (written by a user) or a digest (written by a registry) cannot reach
# another path or host.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*"  # a name or IPv4
    r"|\[[0-9A-Fa-f:.]+\])"  # an IPv6 address
    r"(?::\d{1,5})?"
)
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")

Credentials = dict[str, tuple[str, str]]  # registry host -> (username, password)


class ResolveError(Exception):
    """A tag could not be resolved; the message names what and where, never a credential."""


@dataclass(frozen=True)
class ImageReference:
    """An image string split the way container runtimes split it."""

    registry: str  # host[:port]; Docker Hub is always DOCKER_HUB
    repository: str  # Docker Hub's single-component names get their implicit `library/`
    tag: str | None
    digest: str | None
    # The name as the user wrote it (without tag and digest): a pinned image keeps that
    # spelling, so nodes (and their registry mirrors) resolve it exactly as before.
    name: str = field(default="", compare=False)

    @classmethod
    def parse(cls, image: str) -> ImageReference:
        """Split `image`; an untagged reference without a digest means the tag `latest`.
        Raises ResolveError for a string no registry could serve."""
        rest, at, digest = image.partition("@")
        # A colon after the last slash separates the tag; one before it belongs to a port.
        slash, colon = rest.rfind("/"), rest.rfind(":")
        name, tag = (rest[:colon], rest[colon + 1 :]) if colon > slash else (rest, None)
        first, has_slash, remainder = name.partition("/")
        if has_slash and ("." in first or ":" in first or first == "localhost"):
            registry, repository = first, remainder
        else:
            registry, repository = DOCKER_HUB, name
        if registry in _DOCKER_HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in repository:
                repository = f"library/{repository}"
        if tag is None and not at:
            tag = "latest"
        ref = cls(registry, repository, tag, digest if at else None, name)
        problem = ref._problem()
        if problem:
            raise ResolveError(f"{image!r} is not a valid image reference: {problem}")
        return ref

    def _problem(self) -> str:
        if not _HOST.fullmatch(self.registry):
            return f"{self.registry!r} is not a registry host"
        if not all(_COMPONENT.fullmatch(part) for part in self.repository.split("/")):
            return f"{self.repository!r} is not a repository name (lower case, no empty parts)"
        if self.tag is not None and not _TAG.fullmatch(self.tag):
            return f"{self.tag!r} is not a tag"
        if self.digest is not None and not _DIGEST.fullmatch(self.digest):
            return f"{self.digest!r} is not a sha256 or sha512 digest"
        return ""

    def pinned(self, digest: str) -> str:
        """The image string that runs exactly `digest`: the name as written, then @digest."""
        name = self.name
        if not name:  # built by hand rather than parsed
            host = "docker.io" if self.registry == DOCKER_HUB else self.registry
            name = f"{host}/{self.repository}"
        return f"{name}@{digest}"

    @property
    def display(self) -> str:
        """registry/repository:tag (or @digest), for messages."""
        where = f"{self.registry}/{self.repository}"
        return f"{where}:{self.tag}" if self.tag else f"{where}@{self.digest}"


@dataclass(frozen=True)
class Resolved:
    # What the tag names: for a multi-platform image the index's digest, which is what a pod
    # pins (each node then picks its own platform from it).
    digest: str
    # The config's org.opencontainers.image.version label ("" when absent); for an index, that
    # of the linux/amd64 image (or the first image when no platform matches).
    version: str


# ---------------------------------------------------------------- docker config


def registry_host(key: str) -> str:
    """A docker config `auths` key as the registry host image references name: the scheme and
    path dropped (`https://index.docker.io/v1/` is the classic Docker Hub key), Docker Hub's
    aliases made one."""
    host = key.partition("://")[2] if "://" in key else key
    host = host.partition("/")[0]
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def credentials_from_dockerconfig(docker_config_json: bytes) -> Credentials:
    """The logins of a kubernetes.io/dockerconfigjson Secret's `.dockerconfigjson`. Entries
    with neither `auth` nor username/password (e.g. an identity token only) are skipped; when
    two keys name the same registry the first one wins."""
    try:
        auths = json.loads(docker_config_json)["auths"]
    except (ValueError, KeyError, TypeError):
        # No detail from the parser: its message could quote the document, passwords included.
        raise ResolveError("the pull secret's .dockerconfigjson has no valid `auths`") from None
    if not isinstance(auths, dict):
        raise ResolveError("the pull secret's .dockerconfigjson has no valid `auths`")
    found: Credentials = {}
    for key, entry in auths.items():
        host = registry_host(str(key))
        login = _login(host, entry)
        if login is not None and host not in found:
            found[host] = login
    return found


def _login(host: str, entry: Any) -> tuple[str, str] | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    # `auth` wins over username/password, as the kubelet's keyring reads it.
    if isinstance(auth, str) and auth:
        try:
            user, colon, password = base64.b64decode(auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            colon = ""
        if not colon:
            raise ResolveError(
                f"the pull secret's `auth` for {host} is not base64 of user:password"
            )
        return user, password
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(secret, str) and (username or secret):
        return username, secret
    return None


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


def _basic(login: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()


def _challenges(headers: httpx.Headers) -> list[tuple[str, dict[str, str]]]:
    """(scheme in lower case, parameters) of every WWW-Authenticate challenge."""
    found = []
    for value in headers.get_list("www-authenticate"):
        scheme, _, rest = value.strip().partition(" ")
        params = {
            k.lower(): quoted or bare
            for k, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', rest)
        }
        found.append((scheme.lower(), params))
    return found


def _hash(body: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _platform(entry: dict[str, Any]) -> tuple[Any, Any]:
    platform = _mapping(entry.get("platform"))
    return platform.get("os"), platform.get("architecture")


def _attestation(entry: dict[str, Any]) -> bool:
    # Build attestations (buildx) sit in indexes as manifests of platform unknown/unknown.
    kind = _mapping(entry.get("annotations")).get("vnd.docker.reference.type")
    return kind == "attestation-manifest"


class RegistryClient:
    """Resolves image tags; one client serves every registry and keeps their tokens."""

    def __init__(
        self,
        plain_http: frozenset[str] = frozenset(),
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Registries (host:port as references write them) spoken to over http, not https.
        self._plain_http = plain_http
        self._timeout = timeout
        self._clock = clock
        # trust_env off: no proxy or netrc from the operator's environment decides where a
        # request (with a login in it) goes. Redirects are followed for blobs only.
        self._http = httpx.AsyncClient(
            transport=transport, timeout=timeout, trust_env=False, follow_redirects=False
        )
        # (registry, repository, login fingerprint) -> (bearer token, expiry on the clock)
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    async def close(self) -> None:
        await self._http.aclose()

    async def resolve(self, image: str, credentials: Credentials | None = None) -> Resolved:
        """The digest `image`'s tag names now and that image's version label."""
        ref = ImageReference.parse(image)
        login = (credentials or {}).get(ref.registry)
        # A reference with both tag and digest runs the digest (container runtimes ignore
        # the tag then): resolve what will run.
        target = ref.digest or ref.tag or "latest"
        what = f"the digest {ref.digest}" if ref.digest else f"the tag {ref.tag!r}"
        answer = await self._fetch(ref, login, f"manifests/{target}", _ACCEPT, what)
        digest = self._manifest_digest(ref, answer)
        if ref.digest and digest != ref.digest:
            raise ResolveError(f"resolving {ref.display}: the registry served {digest} instead")
        manifest = self._document(ref, answer.body, what)
        kind = self._media_type(ref, answer, manifest, what)
        if kind in _INDEXES:
            child = self._platform_manifest(ref, manifest)
            what = f"the manifest {child}"
            answer = await self._fetch(ref, login, f"manifests/{child}", _ACCEPT, what)
            self._verify(ref, answer.body, child, what)
            manifest = self._document(ref, answer.body, what)
            if self._media_type(ref, answer, manifest, what) not in _MANIFESTS:
                raise ResolveError(f"resolving {ref.display}: {what} is not an image manifest")
        return Resolved(digest=digest, version=await self._version(ref, login, manifest))

    # -- reading documents
    def _manifest_digest(self, ref: ImageReference, answer: _Answer) -> str:
        """The header's digest, checked against the body: the digest is pinned while the
        version comes from the body, so both must name the same bytes. A registry that does
        not send the header gets the sha256 of the body, which is what it would have sent."""
        header = str(answer.headers.get("docker-content-digest", ""))
        if not header:
            return _hash(answer.body, "sha256")
        if not _DIGEST.fullmatch(header):
            raise ResolveError(f"resolving {ref.display}: the registry sent the digest {header!r}")
        self._verify(ref, answer.body, header, "the manifest")
        return header

    def _verify(self, ref: ImageReference, body: bytes, digest: str, what: str) -> None:
        actual = _hash(body, digest.partition(":")[0])
        if actual != digest:
            raise ResolveError(
                f"resolving {ref.display}: {what} was announced as {digest} but its content "
                f"hashes to {actual}"
            )

    def _document(self, ref: ImageReference, body: bytes, what: str) -> dict[str, Any]:
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ResolveError(f"resolving {ref.display}: {what} is not a JSON object")
        return document

    def _media_type(
        self, ref: ImageReference, answer: _Answer, document: dict[str, Any], what: str
    ) -> str:
        # The body's mediaType is part of what the digest covers; the header is the fallback
        # for old Docker manifests that omit it.
        header = str(answer.headers.get("content-type", "")).partition(";")[0].strip()
        kind = document.get("mediaType") or header
        if kind not in _INDEXES | _MANIFESTS:
            raise ResolveError(f"resolving {ref.display}: {what} has media type {kind!r}")
        return str(kind)

    def _platform_manifest(self, ref: ImageReference, index: dict[str, Any]) -> str:
        """The digest of the index's linux/amd64 manifest, else of its first image."""
        entries = [_mapping(m) for m in index.get("manifests") or [] if isinstance(m, dict)]
        images = [m for m in entries if not _attestation(m)]
        matching = [m for m in images if _platform(m) == _PLATFORM]
        chosen = (matching or images or [{}])[0].get("digest")
        if not isinstance(chosen, str) or not _DIGEST.fullmatch(chosen):
            raise ResolveError(f"resolving {ref.display}: the image index names no manifest")
        return chosen

    async def _version(
        self, ref: ImageReference, login: tuple[str, str] | None, manifest: dict[str, Any]
    ) -> str:
        digest = _mapping(manifest.get("config")).get("digest")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ResolveError(f"resolving {ref.display}: the image manifest names no config")
        what = f"the config blob {digest}"
        answer = await self._fetch(ref, login, f"blobs/{digest}", "*/*", what, follow=True)
        self._verify(ref, answer.body, digest, what)
        labels = _mapping(
            _mapping(self._document(ref, answer.body, what).get("config")).get("Labels")
        )
        version = labels.get(VERSION_LABEL, "")
        return version if isinstance(version, str) else ""

    # -- HTTP and authentication
    def _url(self, ref: ImageReference, path: str) -> str:
        scheme = "http" if ref.registry in self._plain_http else "https"
        return f"{scheme}://{ref.registry}/v2/{ref.repository}/{path}"

    async def _fetch(
        self,
        ref: ImageReference,
        login: tuple[str, str] | None,
        path: str,
        accept: str,
        what: str,
        follow: bool = False,
    ) -> _Answer:
        """GET a document of the repository, answering one authentication challenge."""
        url, key = self._url(ref, path), self._token_key(ref, login)
        headers = {"Accept": accept}
        token = self._cached_token(key)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        answer = await self._get(ref, url, headers, what, follow)
        if answer.status == 401:
            # Also when a cached token was refused (revoked, or expired early): a new one.
            self._tokens.pop(key, None)
            authorization = await self._authorization(ref, login, answer.headers, key)
            if authorization is not None:
                headers["Authorization"] = authorization
                answer = await self._get(ref, url, headers, what, follow)
        if answer.status != 200:
            raise self._status_error(ref, login, answer.status, what)
        return answer

    def _status_error(
        self, ref: ImageReference, login: tuple[str, str] | None, status: int, what: str
    ) -> ResolveError:
        where = f"resolving {ref.display}"
        if status == 404:
            return ResolveError(f"{where}: {what} does not exist (HTTP 404)")
        if status in (401, 403):
            who = (
                f"the credentials for {ref.registry} were refused"
                if login
                else f"no credentials for {ref.registry} were given"
            )
            return ResolveError(f"{where}: access to {what} denied (HTTP {status}); {who}")
        if status == 429:
            return ResolveError(f"{where}: the registry is rate limiting (HTTP 429)")
        return ResolveError(f"{where}: the registry answered HTTP {status} for {what}")

    def _token_key(
        self, ref: ImageReference, login: tuple[str, str] | None
    ) -> tuple[str, str, str]:
        # Keyed by login too: a token got with one namespace's pull secret must not serve a
        # cluster whose secret (or lack of one) would not have got it. Hashed, so the cache
        # does not keep passwords.
        who = hashlib.sha256("\0".join(login).encode()).hexdigest() if login else ""
        return ref.registry, ref.repository, who

    def _cached_token(self, key: tuple[str, str, str]) -> str | None:
        token, expires = self._tokens.get(key, ("", 0.0))
        if token and self._clock() < expires:
            return token
        self._tokens.pop(key, None)
        return None

    async def _authorization(
        self,
        ref: ImageReference,
        login: tuple[str, str] | None,
        headers: httpx.Headers,
        key: tuple[str, str, str],
    ) -> str | None:
        """The Authorization header that answers the registry's challenge; None when there is
        no answer (a Basic challenge and no login, or no challenge at all)."""
        challenges = _challenges(headers)
        bearer = next((params for scheme, params in challenges if scheme == "bearer"), None)
        if bearer is not None:
            token, lifetime = await self._token(ref, login, bearer)
            self._tokens[key] = (token, self._clock() + lifetime)
            return f"Bearer {token}"
        if login and any(scheme == "basic" for scheme, _ in challenges):
            return _basic(login)
        return None

    async def _token(
        self, ref: ImageReference, login: tuple[str, str] | None, challenge: dict[str, str]
    ) -> tuple[str, float]:
        """A bearer token and its lifetime in seconds from the challenge's token service."""
        realm = challenge.get("realm", "")
        try:
            url = httpx.URL(realm)
        except httpx.InvalidURL:
            url = httpx.URL()
        # The login travels to the realm: never in clear text unless the registry itself is
        # one spoken to in clear text.
        allowed = {"https", "http"} if ref.registry in self._plain_http else {"https"}
        if url.scheme not in allowed or not url.host:
            raise ResolveError(f"resolving {ref.display}: the token service {realm!r} is not https")
        params = {"scope": challenge.get("scope") or f"repository:{ref.repository}:pull"}
        if challenge.get("service"):
            params["service"] = challenge["service"]
        headers = {"Authorization": _basic(login)} if login else {}
        what = f"a token from {url.host}"
        answer = await self._get(ref, str(url), headers, what, params=params)
        if answer.status != 200:
            raise self._status_error(ref, login, answer.status, what)
        body = self._document(ref, answer.body, what)
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ResolveError(f"resolving {ref.display}: {what} held no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_SECONDS
        return token, float(lifetime)

    async def _get(
        self,
        ref: ImageReference,
        url: str,
        headers: dict[str, str],
        what: str,
        follow: bool = False,
        params: dict[str, str] | None = None,
    ) -> _Answer:
        """One GET, its body read up to MAX_BODY_BYTES; transport failures as ResolveError."""
        where = f"resolving {ref.display}"
        try:
            async with self._http.stream(
                "GET", url, headers=headers, params=params, follow_redirects=follow
            ) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ResolveError(f"{where}: {what} is over {MAX_BODY_BYTES} bytes")
                return _Answer(response.status_code, response.headers, bytes(body))
        except httpx.TimeoutException as exc:
            raise ResolveError(
                f"{where}: reading {what} timed out after {self._timeout:g} s"
            ) from exc
        except httpx.HTTPError as exc:
            # httpx's messages name the error and host, never request headers (logins).
            raise ResolveError(
                f"{where}: reading {what} failed: {type(exc).__name__}: {exc}"
            ) from exc
