"""Test helpers for the studio: the server in a background thread, and a tab as a WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time

import aiohttp
from aiohttp import web

from streamdit_jax.studio.protocol import read_frame_message


@contextlib.contextmanager
def serving(studio):
    """Runs ``studio.app`` on 127.0.0.1 (a free port) in a thread with its own event loop; the URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(studio.app)
    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="studio-test-server", daemon=True)
    thread.start()
    assert started.wait(30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


class Tab:
    """A page's socket: every message it receives, kept in order (frames decoded from their header)."""

    def __init__(self, http: aiohttp.ClientSession, url: str, keep_images: bool = True):
        self.http, self.url, self.keep_images = http, url, keep_images
        self.messages: list[dict] = []
        self.frames: list[tuple[dict, bytes, float]] = []  # header, image, arrival time
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None

    async def open(self) -> Tab:
        self.ws = await self.http.ws_connect(self.url.replace("http", "ws") + "/ws", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(message.data))
            elif message.type == aiohttp.WSMsgType.BINARY:
                header, image = read_frame_message(message.data)
                self.frames.append((header, image if self.keep_images else b"", time.perf_counter()))

    async def send(self, **message) -> None:
        await self.ws.send_str(json.dumps(message))

    async def until(self, condition, timeout: float = 60.0, what: str = ""):
        """Waits until ``condition()`` is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while not (value := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}: {self.messages[-5:]}")
            await asyncio.sleep(0.02)
        return value

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    async def message(self, kind: str, timeout: float = 60.0, after: int = 0) -> dict:
        return (await self.until(lambda: self.of(kind)[after:], timeout, kind))[0]

    async def ready_and_start(self, **start) -> dict:
        ready = await self.message("ready")
        await self.send(type="start", **start)
        return ready

    async def close(self) -> None:
        await self.ws.close()
        await self._reader
