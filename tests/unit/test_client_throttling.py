"""A 429 with Retry-After is tried again within the request's time limit (client-go's REST
client does the same), never past the leadership guard."""

from __future__ import annotations

from typing import Any

import pytest

from aidbox_operator.runtime.client import ApiError, KubeClient, NotLeaderError


class ThrottlingApi:
    """Just enough of kubernetes.aio's ApiClient: answers 429 `throttled` times, then 200."""

    def __init__(self, throttled: int, retry_after: str | None = "0") -> None:
        self.throttled = throttled
        self.retry_after = retry_after
        self.sent: list[str] = []
        self.default_headers: dict[str, str] = {}
        self.configuration = type("C", (), {"host": "https://api"})()
        self.rest_client = self

    async def update_params_for_auth(self, *args: Any) -> None:
        return None

    async def request(self, method: str, url: str, **_: Any) -> Any:
        self.sent.append(method)
        throttled = len(self.sent) <= self.throttled
        headers = {"Retry-After": self.retry_after} if throttled and self.retry_after else {}
        return _Answer(429 if throttled else 200, headers)


class _Answer:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers
        self.reason = "Too Many Requests" if status == 429 else "OK"

    async def read(self) -> bytes:
        return b'{"message": "too many requests"}' if self.status == 429 else b"{}"


async def test_a_429_with_retry_after_is_tried_again() -> None:
    api = ThrottlingApi(throttled=2)
    kube = KubeClient(api, "test")  # type: ignore[arg-type]
    assert await kube.request("GET", "/api/v1/namespaces/n/secrets/x") == {}
    assert api.sent == ["GET", "GET", "GET"]


async def test_a_429_without_retry_after_is_an_error() -> None:
    api = ThrottlingApi(throttled=1, retry_after=None)
    kube = KubeClient(api, "test")  # type: ignore[arg-type]
    with pytest.raises(ApiError) as raised:
        await kube.request("GET", "/api/v1/namespaces/n/secrets/x")
    assert raised.value.status == 429 and api.sent == ["GET"]


async def test_throttled_retries_stay_within_the_time_limit() -> None:
    api = ThrottlingApi(throttled=100, retry_after="1")
    kube = KubeClient(api, "test", request_timeout=0.1)  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await kube.request("GET", "/api/v1/namespaces/n/secrets/x")
    assert api.sent == ["GET"]


async def test_a_write_is_not_retried_once_leadership_is_lost() -> None:
    api = ThrottlingApi(throttled=1)
    kube = KubeClient(api, "test")  # type: ignore[arg-type]
    leading = iter([True, False])
    kube.may_write = lambda: next(leading)
    with pytest.raises(NotLeaderError):
        await kube.request("PATCH", "/api/v1/namespaces/n/secrets/x", body={})
    assert api.sent == ["PATCH"]
