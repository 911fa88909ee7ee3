"""The studio's WebSocket messages: the checks on what a page sends, and the binary frame format.

A frame is one binary message: a uint32 (big-endian) header length, the UTF-8 JSON header
``{"frame", "chunk", "prompt_id", "mime"}``, then the JPEG or PNG bytes.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
from PIL import Image

FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}
JPEG_QUALITY = 90


class BadMessage(ValueError):
    """A message the page should not have sent; the text goes back to it as an error notice."""


# type -> {field: (python types, required)}
_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "start": {
        "prompt": ((str,), False),
        "seed": ((int,), False),
        "format": ((str,), False),
        "schedule": ((list,), False),
        "guidance": ((int, float), False),
        "micro_steps": ((int,), False),
    },
    "prompt": {"text": ((str,), True)},
    "pause": {},
    "resume": {},
    "restart": {"seed": ((int,), False)},
    "guidance": {"scale": ((int, float), True)},
    "micro_steps": {"value": ((int,), True)},
    "strength": {"value": ((int, float), True)},
    "record": {"on": ((bool,), True)},
    "webcam": {"on": ((bool,), True)},
    "text2video": {},
}


def parse_message(text: str) -> dict[str, Any]:
    """A control message, checked: its type is known and its fields have the right types."""
    try:
        message = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadMessage(f"malformed message (not JSON: {e.msg})") from e
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise BadMessage('malformed message: expected a JSON object with a "type"')
    kind = message["type"]
    if kind not in _FIELDS:
        raise BadMessage(f"unknown message type {kind[:40]!r}; known: {', '.join(_FIELDS)}")
    for field, (types, required) in _FIELDS[kind].items():
        if field not in message:
            if required:
                raise BadMessage(f"malformed {kind!r} message: field {field!r} is missing")
            continue
        value = message[field]
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            names = " or ".join(t.__name__ for t in types)
            raise BadMessage(f"malformed {kind!r} message: {field!r} must be {names}")
    if kind == "start" and message.get("format", "jpeg") not in FORMATS:
        raise BadMessage(f"unknown frame format {message['format'][:20]!r}; use jpeg or png")
    return message


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
