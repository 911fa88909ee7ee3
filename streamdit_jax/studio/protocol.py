"""The studio's WebSocket messages: what a page sends, checked and parsed once into the stream's live
commands (stream/commands.py) or the page's own messages (:class:`Start`, ...); and the binary frame
format.

A frame is one binary message: a uint32 (big-endian) header length, the UTF-8 JSON header
``{"frame", "chunk", "prompt_id", "mime"}``, then the JPEG or PNG bytes.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
import typing
from types import NoneType
from typing import Any

import numpy as np
from PIL import Image

from streamdit_jax.stream.commands import (
    Command,
    Pause,
    Restart,
    Resume,
    SetGuidance,
    SetMicroSteps,
    SetPrompt,
    SetStrength,
)

FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}
JPEG_QUALITY = 90


class BadMessage(ValueError):
    """A message the page should not have sent; the text goes back to it as an error notice."""


@dataclasses.dataclass(frozen=True)
class Start:
    """Starts the session's stream: its prompt and/or prompt schedule, seed, frame format, guidance scale
    (None: the model's) and micro-steps (None: the scheme's)."""

    prompt: str = ""
    seed: int = 0
    format: str = "jpeg"
    schedule: list = dataclasses.field(default_factory=list)  # [{"at": seconds, "prompt": text}, ...]
    guidance: float | None = None
    micro_steps: int | None = None

    def __post_init__(self):
        if self.format not in FORMATS:
            raise BadMessage(f"unknown frame format {self.format[:20]!r}; use jpeg or png")


@dataclasses.dataclass(frozen=True)
class Record:
    """Starts (``on``) or ends the recording; an ended one is offered for download."""

    on: bool


@dataclasses.dataclass(frozen=True)
class Webcam:
    """Video-to-video from the page's camera frames (binary messages) on, or off."""

    on: bool


@dataclasses.dataclass(frozen=True)
class TextToVideo:
    """Back to text-to-video (from the webcam or an uploaded clip)."""


# The page's messages by "type": the stream's live commands (stream/commands.py) and the page's own.
# A message's other JSON fields are its class's fields, of the types its annotations name.
MESSAGES: dict[str, type] = {
    "start": Start,
    "prompt": SetPrompt,
    "pause": Pause,
    "resume": Resume,
    "restart": Restart,
    "guidance": SetGuidance,
    "micro_steps": SetMicroSteps,
    "strength": SetStrength,
    "record": Record,
    "webcam": Webcam,
    "text2video": TextToVideo,
}
Message = Start | Record | Webcam | TextToVideo | Command


def _json_fields(cls: type) -> dict[str, tuple[tuple[type, ...], bool]]:
    """{field: (the JSON values it takes as Python types, required)} of a message class: a float field
    takes an int too, an ``X | None`` one X."""
    hints = typing.get_type_hints(cls)
    fields = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        types = tuple(t for t in typing.get_args(hint) or (hint,) if t is not NoneType)
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        fields[field.name] = ((int, float) if types == (float,) else types, required)
    return fields


_FIELDS = {kind: _json_fields(cls) for kind, cls in MESSAGES.items()}


def parse_message(text: str) -> Message:
    """A control message, checked (its type is known and its fields have the right types) and made into
    its class."""
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadMessage(f"malformed message (not JSON: {e.msg})") from e
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise BadMessage('malformed message: expected a JSON object with a "type"')
    kind = message["type"]
    if kind not in MESSAGES:
        raise BadMessage(f"unknown message type {kind[:40]!r}; known: {', '.join(MESSAGES)}")
    for field, (types, required) in _FIELDS[kind].items():
        if field not in message:
            if required:
                raise BadMessage(f"malformed {kind!r} message: field {field!r} is missing")
            continue
        value = message[field]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in types)
            raise BadMessage(f"malformed {kind!r} message: {field!r} must be {names}")
    return MESSAGES[kind](**{field: message[field] for field in _FIELDS[kind] if field in message})


def message_type(message: Message) -> str:
    """The "type" of a message's JSON."""
    return next(kind for kind, cls in MESSAGES.items() if isinstance(message, cls))


def parse_schedule(items: list) -> list[tuple[float, str]]:
    """A start message's schedule: ``[{"at": seconds, "prompt": text}, ...]``."""
    schedule = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("at"), int | float)
            or not isinstance(item.get("prompt"), str)
            or item["at"] < 0
        ):
            raise BadMessage('malformed schedule: expected [{"at": seconds >= 0, "prompt": text}, ...]')
        schedule.append((float(item["at"]), item["prompt"]))
    return schedule


def encode_image(frame: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(frame).save(out, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(frame).save(out, format="PNG", compress_level=1)
    return out.getvalue()


def frame_message(header: dict, image: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(head)) + head + image


def read_frame_message(data: bytes) -> tuple[dict, bytes]:
    """The inverse of :func:`frame_message` (clients and tests)."""
    (length,) = struct.unpack(">I", data[:4])
    return json.loads(data[4 : 4 + length]), data[4 + length :]


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG/PNG as uint8 RGB [H, W, 3]; BadMessage when it is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise BadMessage(f"a binary message is not a JPEG or PNG image ({type(e).__name__})") from e


def fit_prompt(encoder: Any, text: str) -> tuple[str, bool]:
    """``text`` cut to the text encoder's token limit (its first tokens), and whether it was cut.
    Encoders without a tokenizer (benchmark stand-ins) take any text."""
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None or not hasattr(tokenizer, "room"):
        return text, False
    encoding = tokenizer.tokenizer.encode(text, add_special_tokens=False)
    if len(encoding.ids) <= tokenizer.room:
        return text, False
    end = encoding.offsets[tokenizer.room - 1][1]
    return text[:end], True
