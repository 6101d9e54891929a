"""Informer semantics with a scripted API (what a real server does rarely or never on demand:
410 Gone, dropped connections)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aidbox_operator.runtime import backoff as backoff_module
from aidbox_operator.runtime.client import ApiError
from aidbox_operator.runtime.informer import Informer, Key, Scope
from aidbox_operator.runtime.kinds import CONFIGMAPS


def _item(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(version)}}


class ScriptedApi:
    """LIST answers come from `lists`; each WATCH plays the next script (a list of events, or
    an exception to raise), then waits forever."""

    def __init__(self, lists: list[list[dict[str, Any]]], watches: list[Any]) -> None:
        self.lists = lists
        self.watches = watches
        self.watched_from: list[str] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        items = self.lists.pop(0)
        version = max(int(i["metadata"]["resourceVersion"]) for i in items) if items else 1
        return {"metadata": {"resourceVersion": str(version)}, "items": items}

    async def watch(self, path: str, query: dict[str, Any], **kwargs: Any) -> AsyncIterator[Any]:
        self.watched_from.append(query["resourceVersion"])
        script = self.watches.pop(0) if self.watches else None
        if isinstance(script, BaseException):
            raise script
        for event in script or []:
            yield event
        if script is None:
            await asyncio.Event().wait()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.relists: list[set[Key]] = []

    def event(self, event_type: str, body: dict[str, Any]) -> None:
        self.events.append((event_type, body["metadata"]["name"]))

    def relisted(self, scope: Scope, present: set[Key], resource_version: str) -> None:
        self.relists.append(present)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backoff_module, "MAX_SECONDS", 0.01)


async def _run(api: ScriptedApi, feed: Recorder, until: Any) -> Informer:
    informer = Informer(api, CONFIGMAPS, Scope("ns"), feed)  # type: ignore[arg-type]
    task = asyncio.create_task(informer.run())
    try:
        async with asyncio.timeout(5):
            while not until():  # noqa: ASYNC110 (state another task changes)
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return informer


async def test_gone_relists_and_reports_what_vanished_meanwhile() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    api = ScriptedApi(
        lists=[[_item("a", 5), _item("b", 6)], [_item("b", 9)]],
        watches=[[{"type": "BOOKMARK", "object": _item("", 8)}, gone]],
    )
    feed = Recorder()
    informer = await _run(api, feed, lambda: len(feed.relists) == 2 and len(api.watched_from) == 2)
    assert informer.synced.is_set()
    # The bookmark moved the resume point; after 410 the informer listed again and watched
    # from the new list's version.
    assert api.watched_from == ["6", "9"]
    assert feed.relists == [{("ns", "a"), ("ns", "b")}, {("ns", "b")}]
    assert feed.events == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "b")]


async def test_dropped_watch_resumes_from_the_last_version_without_listing() -> None:
    api = ScriptedApi(
        lists=[[_item("a", 5)]],
        watches=[[{"type": "MODIFIED", "object": _item("a", 7)}], OSError("connection reset")],
    )
    feed = Recorder()
    await _run(api, feed, lambda: len(api.watched_from) == 3)
    assert api.watched_from == ["5", "7", "7"]
    assert len(feed.relists) == 1
    assert feed.events == [("ADDED", "a"), ("MODIFIED", "a")]


async def test_kind_refused_does_not_hold_the_workers() -> None:
    calls: list[str] = []

    class Refused(ScriptedApi):
        async def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
            calls.append(path)
            raise ApiError(403, "Forbidden", "no")

    informer = await _run(Refused([], []), Recorder(), lambda: len(calls) >= 2)
    assert informer.synced.is_set()  # nothing to follow; the reconciles report what is missing
