"""The studio's web server (aiohttp): the page, one WebSocket per tab, uploads and recordings.

Routes: ``/`` the page, ``/static/*`` its script and style, ``/ws`` the stream (streamdit_jax.studio.
protocol), ``POST /upload/{session}`` a clip for video-to-video, ``GET /record/{session}/{n}.mp4`` a
recording, ``/health`` the sessions. At most ``max_sessions`` streams run; later tabs wait in a queue
and are told their place. Every session shares the one StreamModel and its compiled programs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from importlib import resources

from aiohttp import WSMsgType, web

from streamdit_jax.config import ConfigError
from streamdit_jax.stream import StreamModel
from streamdit_jax.studio.protocol import BadMessage, parse_message
from streamdit_jax.studio.session import DEFAULT_STRENGTH, Session

log = logging.getLogger(__name__)
STATIC = resources.files("streamdit_jax.studio") / "static"
DEFAULT_PROMPT = "a red circle moving left"


@dataclasses.dataclass(frozen=True)
class StudioOptions:
    """What ``streamdit serve`` sets: slots, the upload limit, the offered micro-steps."""

    max_sessions: int = 2
    max_upload_mb: float = 32.0
    micro_steps: tuple[int, ...] = ()  # offered; default: the scheme's s plus 1, 2 and 4
    checkpoint: str = ""

    def __post_init__(self):
        if self.max_sessions < 1:
            raise ConfigError(f"--max-sessions {self.max_sessions} < 1. Fix: e.g. --max-sessions 2")
        if self.max_upload_mb <= 0:
            raise ConfigError(f"--max-upload-mb {self.max_upload_mb} <= 0. Fix: e.g. 32")


class Studio:
    """The app of one StreamModel. ``app`` is the aiohttp application; ``sessions`` the running ones."""

    def __init__(self, model: StreamModel, options: StudioOptions = StudioOptions()):
        self.model, self.options = model, options
        s = model.cfg.scheme[3]
        self.micro_steps = tuple(sorted(set(options.micro_steps or (s, 1, 2, 4))))
        self.sessions: dict[str, Session] = {}
        self.waiting: list[tuple[asyncio.Event, web.WebSocketResponse]] = []
        self.app = web.Application(client_max_size=int(options.max_upload_mb * 2**20) + 1)
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/static/{name}", self.static)
        self.app.router.add_get("/ws", self.websocket)
        self.app.router.add_post("/upload/{session}", self.upload)
        self.app.router.add_get("/record/{session}/{number}.mp4", self.record)
        self.app.router.add_get("/health", self.health)
        self.app.on_shutdown.append(self._shutdown)

    # -- HTTP -------------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=(STATIC / "index.html").read_text(), content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        types = {"studio.js": "application/javascript", "studio.css": "text/css"}
        name = request.match_info["name"]
        if name not in types:
            raise web.HTTPNotFound()
        return web.Response(text=(STATIC / name).read_text(), content_type=types[name])

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"sessions": len(self.sessions), "waiting": len(self.waiting),
                                  "max_sessions": self.options.max_sessions})  # fmt: skip

    async def upload(self, request: web.Request) -> web.Response:
        session = self.sessions.get(request.match_info["session"])
        if session is None:
            return web.json_response({"error": "no such session (reload the page)"}, status=404)
        try:
            strength = float(request.query.get("strength", session.strength))
            if not 0.0 < strength <= 1.0:
                raise ValueError
        except ValueError:
            return await self._refuse(session, "strength must be a number in (0, 1], e.g. 0.6")
        limit = int(self.options.max_upload_mb * 2**20)
        if request.content_length is not None and request.content_length > limit:
            return await self._refuse(session, self._too_large(), 413)
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._refuse(session, self._too_large(), 413)
        if not data:
            return await self._refuse(session, "the upload is empty: choose a video file")
        try:
            answer = await session.upload(data, strength)
        except (BadMessage, ConfigError) as e:
            return await self._refuse(session, str(e))
        await session.notice("info", f"video-to-video from the uploaded clip at strength {strength:g}")
        return web.json_response(answer)

    def _too_large(self) -> str:
        return f"the upload is larger than {self.options.max_upload_mb:g} MB (serve --max-upload-mb)"

    async def _refuse(self, session: Session, text: str, status: int = 400) -> web.Response:
        await session.notice("error", text)
        return web.json_response({"error": text}, status=status)

    async def record(self, request: web.Request) -> web.StreamResponse:
        session = self.sessions.get(request.match_info["session"])
        number = request.match_info["number"]
        path = session.recording(int(number)) if session is not None and number.isdigit() else None
        if path is None:
            raise web.HTTPNotFound(text="no such recording")
        return web.FileResponse(
            path, headers={"Content-Disposition": f'attachment; filename="streamdit-{number}.mp4"'}
        )

    # -- the stream socket --------------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=4 * 2**20, heartbeat=20)
        await ws.prepare(request)
        if not await self._admitted(ws):
            return ws
        session_id = uuid.uuid4().hex
        session = Session(self.model, session_id, ws.send_json, ws.send_bytes, self.micro_steps)
        self.sessions[session_id] = session
        try:
            await ws.send_json(self._ready(session_id))
            async for message in ws:
                await self._on_message(session, message)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception:  # one broken session never takes the server down
            log.exception("session %s failed", session_id)
        finally:
            del self.sessions[session_id]
            await session.close()
            self._admit_next()
        return ws

    async def _on_message(self, session: Session, message) -> None:
        try:
            if message.type == WSMsgType.TEXT:
                await session.handle(parse_message(message.data))
            elif message.type == WSMsgType.BINARY:
                session.webcam_frame(message.data)
        except (BadMessage, ConfigError, RuntimeError) as e:
            await session.notice("error", str(e))

    def _ready(self, session_id: str) -> dict:
        cfg = self.model.cfg
        return {
            "type": "ready",
            "session": session_id,
            "checkpoint": self.options.checkpoint,
            "decoder": self.model.decoder,
            "resolution": list(cfg.data.resolution),
            "fps": cfg.data.fps,
            "frames_per_chunk": self.model.autoencoder.cfg.temporal_compression * cfg.scheme[2],
            "scheme": list(cfg.scheme),
            "guidance": cfg.rollout.guidance,
            "micro_steps_choices": list(self.micro_steps),
            "max_prompt_tokens": self.model.text_encoder.max_length,
            "default_prompt": DEFAULT_PROMPT,
            "max_upload_mb": self.options.max_upload_mb,
            "strength": DEFAULT_STRENGTH,
        }

    async def _admitted(self, ws: web.WebSocketResponse) -> bool:
        """True once a slot is free; False when the tab closes while it waits."""
        if len(self.sessions) < self.options.max_sessions and not self.waiting:
            return True
        admitted = asyncio.Event()
        self.waiting.append((admitted, ws))
        await self._tell_places()
        try:
            while not admitted.is_set():
                try:
                    message = await ws.receive(timeout=0.25)
                except TimeoutError:
                    continue
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    return False
            return True
        finally:
            if (admitted, ws) in self.waiting:
                self.waiting.remove((admitted, ws))
                await self._tell_places()

    def _admit_next(self) -> None:
        if self.waiting and len(self.sessions) < self.options.max_sessions:
            admitted, _ = self.waiting.pop(0)
            admitted.set()
            asyncio.get_running_loop().create_task(self._tell_places())

    async def _tell_places(self) -> None:
        for place, (_, ws) in enumerate(self.waiting, start=1):
            if not ws.closed:
                await ws.send_json(
                    {"type": "queued", "position": place, "max_sessions": self.options.max_sessions}
                )

    async def _shutdown(self, app: web.Application) -> None:
        for session in list(self.sessions.values()):
            await session.close()
