"""A small TCP fault proxy between one operator replica and the API server.

It forwards bytes (TLS stays end to end: the proxy listens on 127.0.0.1, a name the API
server's certificate holds, so clients need no other server name) and, on command, injects
the faults a network has:

- pass: forward as is;
- reset: reset every open connection (RST) and every new one while the mode lasts;
- blackhole: accept, but deliver nothing in either direction while the mode lasts; bytes are
  held as TCP would keep retransmitting them and delivered when the mode ends, unless the
  sender resets its connection meanwhile (then they are dropped, as a kernel drops them);
- latency: deliver every chunk `latency` seconds after it was read, in both directions.

It runs its own event loop on a thread, so synchronous tests drive it with plain calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PASS, RESET, BLACKHOLE, LATENCY = "pass", "reset", "blackhole", "latency"
CHUNK = 65536


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a crashed or reset peer does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)  # compared and hashed by identity
class _Pipe:
    """One direction of one connection: chunks wait here until they may be delivered."""

    chunks: deque[tuple[float, bytes]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    eof: bool = False


class FaultProxy:
    """`listener`: an already bound, listening socket to serve on (e.g. one made inside a
    pod's network namespace); by default a new one on 127.0.0.1."""

    def __init__(
        self, target_host: str, target_port: int, listener: socket.socket | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self._listener = listener
        self.mode = PASS
        self.latency = 0.0
        self.port = 0
        self.connections = 0
        self.resets = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[_Pipe] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- control, from any thread ------------------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        self.port = self._call(self._listen)
        return self.port

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close_all)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def set_mode(self, mode: str, latency: float = 0.0) -> None:
        assert mode in (PASS, RESET, BLACKHOLE, LATENCY), mode
        self._call(lambda: self._set_mode(mode, latency))

    @contextlib.contextmanager
    def fault(self, mode: str, latency: float = 0.0) -> Any:
        self.set_mode(mode, latency)
        try:
            yield self
        finally:
            self.set_mode(PASS)

    def _call(self, fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    # -- on the proxy's loop -----------------------------------------------------------------
    async def _listen(self) -> int:
        if self._listener is not None:
            self._server = await asyncio.start_server(self._accept, sock=self._listener)
        else:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _abort(writer)

    def _set_mode(self, mode: str, latency: float) -> None:
        self.mode, self.latency = mode, latency
        if mode == RESET:
            for writer in list(self._writers):
                _abort(writer)
                self.resets += 1
        for pipe in self._pipes:
            pipe.wake.set()  # re-evaluate held chunks

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        if self.mode == RESET:
            self.resets += 1
            _abort(client_w)
            return
        self._writers.add(client_w)
        up = _Pipe()  # client -> API server
        down = _Pipe()  # API server -> client
        self._pipes |= {up, down}
        opened: list[asyncio.StreamWriter] = []
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(client_r, up))
                group.create_task(self._forward(up, down, client_w, opened))
        except* (OSError, ConnectionError):
            pass
        finally:
            self._pipes -= {up, down}
            for writer in (client_w, *opened):
                self._writers.discard(writer)
                if not writer.is_closing():
                    _abort(writer)

    async def _forward(
        self, up: _Pipe, down: _Pipe, client_w: asyncio.StreamWriter, opened: list[Any]
    ) -> None:
        # Connect only once something may pass: a blackholed SYN reaches nobody.
        await self._until_open(up)
        upstream_r, upstream_w = await asyncio.open_connection(*self.target)
        opened.append(upstream_w)
        self._writers.add(upstream_w)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._deliver(up, upstream_w))
            group.create_task(self._read(upstream_r, down))
            group.create_task(self._deliver(down, client_w))

    async def _until_open(self, pipe: _Pipe) -> None:
        while self.mode == BLACKHOLE:
            pipe.wake.clear()
            await pipe.wake.wait()

    async def _read(self, reader: asyncio.StreamReader, pipe: _Pipe) -> None:
        try:
            while data := await reader.read(CHUNK):
                delay = self.latency if self.mode == LATENCY else 0.0
                pipe.chunks.append((time.monotonic() + delay, data))
                pipe.wake.set()
        except ConnectionError:
            # The sender reset: what it sent and we still hold is gone, as in its kernel.
            pipe.chunks.clear()
            raise
        pipe.eof = True
        pipe.wake.set()

    async def _deliver(self, pipe: _Pipe, writer: asyncio.StreamWriter) -> None:
        while True:
            if self.mode == BLACKHOLE or not pipe.chunks:
                if pipe.eof and not pipe.chunks:
                    writer.write_eof()
                    return
                pipe.wake.clear()
                await pipe.wake.wait()
                continue
            due, data = pipe.chunks[0]
            wait = due - time.monotonic()
            if wait > 0:
                pipe.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pipe.wake.wait(), wait)
                continue
            pipe.chunks.popleft()
            writer.write(data)
            await writer.drain()
