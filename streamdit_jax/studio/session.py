"""One browser tab's stream: its Streamer, a relay thread, the pacing pump and the recorder.

The Streamer is paced (``request``): the pump asks for chunk k + 1 just before chunk k has played out
(the slowest of the last 8 generation times plus a margin ahead), so that a prompt sent while chunk k
plays shows in chunk k + 1, unless it arrives within that lead (then in k + 2). The relay thread takes decoded
chunks from the Streamer, encodes the frames (JPEG/PNG) and writes the recording, off the event loop.
The pump sends each frame at the stream's frame rate into a bounded send queue; a sender task writes
that queue to the socket. A slow viewer fills the queue and loses its oldest frames; the model never
waits for it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from streamdit_jax.data import DataError
from streamdit_jax.flow import Scheme
from streamdit_jax.stream import (
    Chunk,
    Command,
    InputVideo,
    LiveInput,
    Pause,
    Resume,
    SetInput,
    SetMicroSteps,
    SetPrompt,
    SetStrength,
    Streamer,
    StreamModel,
    StreamSettings,
    VideoSink,
)
from streamdit_jax.studio.protocol import (
    FORMATS,
    BadMessage,
    Message,
    Record,
    Start,
    TextToVideo,
    Webcam,
    decode_image,
    encode_image,
    fit_prompt,
    frame_message,
    message_type,
    parse_schedule,
)

log = logging.getLogger(__name__)
DEFAULT_STRENGTH = 0.6  # video-to-video, until the page's slider says otherwise
MARGIN_S = 0.15  # asked-for chunks are due this long before they are needed, beyond their measured time
STATS_EVERY_S = 0.5


class Session:
    """A stream for one socket. ``send_json`` and ``send_bytes`` write to the socket (coroutines);
    ``handle`` takes the page's checked messages; ``close`` frees everything the session made."""

    def __init__(
        self,
        model: StreamModel,
        session_id: str,
        send_json: Callable[[dict], Awaitable[None]],
        send_bytes: Callable[[bytes], Awaitable[None]],
        micro_steps_choices: tuple[int, ...],
        default_strength: float = DEFAULT_STRENGTH,
    ):
        self.model, self.id = model, session_id
        self.send_json, self._send_bytes = send_json, send_bytes
        self.micro_steps_choices = micro_steps_choices
        self.fps = model.cfg.data.fps
        self.strength = default_strength
        self.format = "jpeg"
        self.streamer: Streamer | None = None
        self.dir = Path(tempfile.mkdtemp(prefix=f"streamdit-studio-{session_id[:8]}-"))
        self.loop = asyncio.get_running_loop()
        self._chunks: asyncio.Queue = asyncio.Queue()
        self._outbox: asyncio.Queue = asyncio.Queue(maxsize=max(2, self.fps))  # ~1 s of frames
        self._tasks: list[asyncio.Task] = []
        self._relay: threading.Thread | None = None
        self._recorder: VideoSink | None = None
        self._recording = threading.Lock()  # the relay thread writes what the loop opens and closes
        self._recordings = 0
        self._uploads = 0
        self._webcam: LiveInput | None = None
        self._announced_prompt = -1
        self._cut: set[str] = set()  # prompts cut to the encoder's limit
        self._run = -1
        self._request_timer: asyncio.TimerHandle | None = None
        self._gen_times: collections.deque = collections.deque(maxlen=8)  # dispatch to decoded, s
        self._sent_times: collections.deque = collections.deque(maxlen=4 * self.fps)
        self.frames_sent = self.dropped = 0
        self.prompt_delays: list[float] = []  # seconds from a prompt's arrival to its first frame sent
        self.log: list[dict] = []  # what the stream took, when: the server's log of this session
        self.closed = False
        self.chunk_on_screen = -1  # index of the chunk whose frames are being sent

    # -- the page's messages --------------------------------------------------------------------------

    async def handle(self, message: Message) -> None:
        """A page's message (protocol.parse_message): the session's step for it, if it has one
        (``_HANDLERS``), else the live command straight to the stream."""
        if self.streamer is None and not isinstance(message, Start):
            raise BadMessage(f"{message_type(message)!r} before 'start': send start first")
        await _HANDLERS.get(type(message), Session._send)(self, message)

    async def _send(self, command: Command) -> None:
        self.streamer.send(command)

    async def _prompt(self, command: SetPrompt) -> None:
        self.streamer.send(SetPrompt(await self._checked_prompt(command.text)))

    async def _pause(self, command: Pause) -> None:
        self.streamer.send(command)
        self._cancel_request()

    async def _resume(self, command: Resume) -> None:
        self.streamer.send(command)
        self._request_soon(0.0)

    async def _micro_steps(self, command: SetMicroSteps) -> None:
        if command.value not in self.micro_steps_choices:
            raise BadMessage(f"micro-steps {command.value}: choose one of {list(self.micro_steps_choices)}")
        self.streamer.send(command)

    async def _strength(self, command: SetStrength) -> None:
        self.streamer.send(command)
        self.strength = float(command.value)

    async def _text_to_video(self, message: TextToVideo) -> None:
        await self._set_webcam(False)
        self.streamer.send(SetInput(None))

    async def _checked_prompt(self, text: str) -> str:
        text = " ".join(text.split())
        if not text:
            raise BadMessage("the prompt is empty: type what the video should show, then Enter")
        fitted, cut = fit_prompt(self.model.text_encoder, text)
        if cut:
            self._cut.add(fitted)
            await self.notice(
                "warning", f"the prompt is longer than the text encoder's limit and was cut to: {fitted!r}"
            )
        return fitted

    async def _start(self, message: Start) -> None:
        if self.streamer is not None:
            raise BadMessage("this session has started already: use restart")
        prompt = await self._checked_prompt(message.prompt) if message.prompt.strip() else ""
        self.format = message.format
        scheme = Scheme(*self.model.cfg.scheme)
        if message.micro_steps is not None:
            if message.micro_steps not in self.micro_steps_choices:
                raise BadMessage(f"micro-steps: choose one of {list(self.micro_steps_choices)}")
            scheme = dataclasses.replace(scheme, micro_steps=message.micro_steps)
        schedule = parse_schedule(message.schedule)
        if not prompt and not schedule:
            raise BadMessage("the prompt is empty: type what the video should show, then Enter")
        settings = StreamSettings(
            scheme=scheme, guidance=message.guidance, seed=message.seed, schedule=schedule, lookahead=0,
            paced=True, keep_alive=True,
        )  # fmt: skip
        self.streamer = await asyncio.to_thread(Streamer, self.model, prompt or schedule[0][1], settings)
        self._relay = threading.Thread(
            target=self._relay_chunks, name=f"studio-relay-{self.id[:8]}", daemon=True
        )
        self._relay.start()
        self._tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._sender()),
            asyncio.create_task(self._stats()),
        ]
        self.streamer.request()

    async def _record(self, message: Record) -> None:
        if message.on and self._recorder is None:
            self._recordings += 1
            path = self.dir / f"recording-{self._recordings}.mp4"
            self._recorder = await asyncio.to_thread(VideoSink, self.fps, path)
            await self.send_json({"type": "recording", "state": "on", "url": None, "frames": 0})
        elif not message.on and self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            await asyncio.to_thread(self._close_recorder, recorder)
            url = f"/record/{self.id}/{self._recordings}.mp4"
            await self.send_json(
                {"type": "recording", "state": "ready", "url": url, "frames": recorder.frames}
            )

    def _close_recorder(self, recorder: VideoSink) -> None:
        with self._recording:  # not while the relay thread writes to it
            recorder.close()

    def recording(self, number: int) -> Path | None:
        path = self.dir / f"recording-{number}.mp4"
        return path if path.is_file() and (self._recorder is None or number < self._recordings) else None

    async def _webcam_message(self, message: Webcam) -> None:
        await self._set_webcam(message.on)

    async def _set_webcam(self, on: bool) -> None:
        if on and self._webcam is None:
            self._webcam = LiveInput(self.model.cfg)
            self.streamer.send(SetInput(self._webcam, self.strength))
            await self.notice("info", "webcam: video-to-video from the camera's frames")
        elif not on and self._webcam is not None:
            self._webcam = None
            self.streamer.send(SetInput(None))

    def webcam_frame(self, data: bytes) -> None:
        if self._webcam is None:
            raise BadMessage("a webcam frame while the webcam is off: send {type: webcam, on: true} first")
        self._webcam.push(decode_image(data))

    async def upload(self, data: bytes, strength: float) -> dict:
        """Restarts the stream as video-to-video of an uploaded clip; what the page is told."""
        if self.streamer is None:
            raise BadMessage("upload before the stream started")
        self._uploads += 1
        path = self.dir / f"upload-{self._uploads}.video"  # the server's name: nothing the page sends
        path.write_bytes(data)
        needed = 1 + self.model.autoencoder.cfg.temporal_compression * (self.streamer.scheme.frames - 1)
        try:
            video = await asyncio.to_thread(InputVideo, path, self.model.cfg)
            have = len(await asyncio.to_thread(video.take, needed))
        except (DataError, FileNotFoundError) as e:
            path.unlink(missing_ok=True)
            raise BadMessage(
                f"the upload is not a video this server can read ({str(e).split(':')[-1].strip()})"
            ) from e
        if have < needed:
            video.close()
            raise BadMessage(
                f"the clip is too short: {have} frames at {self.fps} fps; the stream's first buffer needs "
                f"{needed} ({needed / self.fps:.1f} s)"
            )
        await self._set_webcam(False)
        self.strength = strength
        self.streamer.send(SetInput(video.reopen(), strength))
        return {"ok": True, "strength": strength}

    async def notice(self, level: str, text: str) -> None:
        await self.send_json({"type": "notice", "level": level, "text": text})

    # -- chunks to frames ---------------------------------------------------------------------------

    def _relay_chunks(self) -> None:
        """Relay thread: the Streamer's chunks, encoded (and recorded), onto the event loop."""
        streamer = self.streamer
        while True:
            try:
                chunk = streamer.next_chunk()
            except Exception as e:  # the stream failed: the page hears why, the server goes on
                log.exception("session %s: the stream failed", self.id)
                self._to_loop(e)
                return
            if chunk is None:
                self._to_loop(None)
                return
            images = [encode_image(frame, self.format) for frame in chunk.frames]
            with self._recording:
                recorder = self._recorder
                if recorder is not None:
                    for frame in chunk.frames:
                        recorder.write(frame)
            self._to_loop((chunk, images))

    def _to_loop(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.loop.call_soon_threadsafe(self._chunks.put_nowait, item)

    async def _pump(self) -> None:
        """Sends each chunk's frames at the stream's frame rate and asks for the next chunk in time."""
        streamer, period = self.streamer, 1.0 / self.fps
        due = self.loop.time()
        while True:
            item = await self._chunks.get()
            if item is None:
                return
            if isinstance(item, Exception):
                await self.notice("error", f"the stream stopped: {item}. Restart it, or reload the page")
                return
            chunk, images = item
            self._gen_times.append(chunk.ready - chunk.dispatched)
            now = self.loop.time()
            due = max(due, now)
            if chunk.run != self._run:
                self._run = chunk.run
                mode = "video-to-video" if streamer.input is not None else "text-to-video"
                await self.send_json({"type": "started", "seed": streamer.seed, "prompt": streamer.prompt,
                                      "mode": mode})  # fmt: skip
            self._announce(chunk)
            self.chunk_on_screen = chunk.index
            self._request_soon(due + len(images) * period - self._lead() - now)
            for i, image in enumerate(images):
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                header = {"frame": chunk.first_frame + i, "chunk": chunk.index, "prompt_id": chunk.prompt_id,
                          "mime": FORMATS[self.format]}  # fmt: skip
                self._post(frame_message(header, image))
                due += period

    def _announce(self, chunk: Chunk) -> None:
        """Tells the page (and the session's log) when a new prompt takes over."""
        if chunk.prompt_id <= self._announced_prompt:
            return
        change = self.streamer.prompts[chunk.prompt_id]
        self._announced_prompt = chunk.prompt_id
        delay = time.perf_counter() - change.received
        if chunk.index > 0:
            self.prompt_delays.append(delay)
        entry = {"type": "prompt", "id": change.id, "text": change.text, "from_chunk": chunk.index,
                 "from_frame": chunk.first_frame, "run": chunk.run,
                 "truncated": change.text in self._cut}  # fmt: skip
        self.log.append(entry)
        log.info("session %s: prompt %d %r from chunk %d", self.id[:8], change.id, change.text, chunk.index)
        self.loop.create_task(self.send_json(entry))

    def _lead(self) -> float:
        """How long before it is due to ask for a chunk: the slowest of the last 8, and a margin."""
        return (max(self._gen_times) if self._gen_times else 0.5) + MARGIN_S

    def _request_soon(self, delay: float) -> None:
        self._cancel_request()
        if self.streamer is not None and not self.closed:
            self._request_timer = self.loop.call_later(max(0.0, delay), self.streamer.request)

    def _cancel_request(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _post(self, message: bytes) -> None:
        """Into the bounded send queue; when it is full the oldest frame goes."""
        if self._outbox.full():
            self._outbox.get_nowait()
            self.dropped += 1
        self._outbox.put_nowait(message)

    async def _sender(self) -> None:
        while True:
            message = await self._outbox.get()
            await self._send_bytes(message)
            self.frames_sent += 1
            self._sent_times.append(time.perf_counter())

    def generated_fps(self) -> float | None:
        """Frames the model makes per second of its own time (DiT step and decoding of a chunk)."""
        if not self._gen_times or self.streamer is None:
            return None
        frames = self.model.autoencoder.cfg.temporal_compression * self.streamer.scheme.chunk_frames
        return frames / statistics.median(self._gen_times)

    def delivered_fps(self) -> float | None:
        times = [t for t in self._sent_times if t > time.perf_counter() - 2.0]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else None

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_EVERY_S)
            await self.send_json({
                "type": "stats",
                "generated_fps": self.generated_fps(),
                "delivered_fps": self.delivered_fps(),
                "queue": self._outbox.qsize() + self.streamer.waiting,
                "dropped": self.dropped,
                "prompt_delay_ms": 1000 * self.prompt_delays[-1] if self.prompt_delays else None,
                "frame": self.frames_sent,
                "paused": self.streamer.paused,
            })  # fmt: skip

    # -- the end --------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stops the stream and its threads and tasks, deletes the session's files."""
        if self.closed:
            return
        self.closed = True
        self._cancel_request()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.streamer is not None:
            await asyncio.to_thread(self.streamer.close)
        if self._relay is not None:
            await asyncio.to_thread(self._relay.join)
        if self._recorder is not None:
            await asyncio.to_thread(self._close_recorder, self._recorder)
        self.streamer = self._recorder = self._webcam = None
        shutil.rmtree(self.dir, ignore_errors=True)


_HANDLERS = {  # the messages with a step of the session's own
    Start: Session._start,
    SetPrompt: Session._prompt,
    Pause: Session._pause,
    Resume: Session._resume,
    SetMicroSteps: Session._micro_steps,
    SetStrength: Session._strength,
    Record: Session._record,
    Webcam: Session._webcam_message,
    TextToVideo: Session._text_to_video,
}
