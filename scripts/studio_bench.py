"""The studio as its viewers see it: generated and delivered FPS and the prompt-to-pixels delay.

Starts ``streamdit serve`` on a checkpoint as a subprocess (the real server, warmed up before the first
viewer), then for each session count opens that many WebSocket clients at once, as browser tabs would.
Each client starts its stream, and every ``--switch-every`` seconds sends a new prompt and times the
arrival of the first frame that carries it (prompt-to-pixels: the server's pacing, the DiT step, decoding,
encoding and the socket, without the page's own drawing). Delivered FPS is what each client received per
second after a 3-s warm-up; generated FPS is what the model makes per second of its own time (the
server's stats, median). Writes JSON and prints docs/benchmarks.md rows.

    python scripts/studio_bench.py --checkpoint runs/demo/student --sessions 1,2 --seconds 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from streamdit_jax.studio.protocol import read_frame_message

PROMPTS = ["a red circle moving left", "a blue square moving up", "a green triangle moving right",
           "a yellow diamond moving down"]  # fmt: skip
WARMUP_S = 3.0


async def one_tab(url: str, index: int, seconds: float, switch_every: float) -> dict:
    frames, delays, stats = [], [], []
    sent: dict[str, float] = {}  # prompt text -> when it was sent
    prompt_ids: dict[int, str] = {}
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "/ws", max_msg_size=0) as ws:
        began = time.perf_counter()
        next_switch, turn = began + WARMUP_S + switch_every / 2, index

        async def read():
            async for message in ws:
                now = time.perf_counter()
                if message.type == aiohttp.WSMsgType.BINARY:
                    header, _ = read_frame_message(message.data)
                    frames.append(now)
                    text = prompt_ids.get(header["prompt_id"])
                    if text in sent:
                        delays.append(now - sent.pop(text))
                elif message.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(message.data)
                    if data["type"] == "ready":
                        await ws.send_json({"type": "start", "prompt": PROMPTS[index % 4], "seed": index})
                    elif data["type"] == "prompt":
                        prompt_ids[data["id"]] = data["text"]
                    elif data["type"] == "stats" and data["generated_fps"]:
                        stats.append(data["generated_fps"])

        reader = asyncio.create_task(read())
        while time.perf_counter() - began < seconds:
            await asyncio.sleep(0.05)
            if time.perf_counter() >= next_switch:
                turn += 1
                text = f"{PROMPTS[turn % 4]} ({turn})"  # never one the stream has had
                sent[text] = time.perf_counter()
                await ws.send_json({"type": "prompt", "text": text})
                next_switch += switch_every
        await ws.close()
        await reader
    steady = [t for t in frames if t > frames[0] + WARMUP_S] if frames else []
    delivered = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 2 else float("nan")
    return {"frames": len(frames), "delivered_fps": delivered, "delays_s": delays,
            "generated_fps": statistics.median(stats) if stats else float("nan"),
            "first_frame_s": frames[0] - began if frames else float("nan")}  # fmt: skip


async def run_sessions(url: str, count: int, seconds: float, switch_every: float) -> dict:
    tabs = await asyncio.gather(*(one_tab(url, i, seconds, switch_every) for i in range(count)))
    delays = [d for tab in tabs for d in tab["delays_s"]]
    return {
        "sessions": count,
        "generated_fps": [round(t["generated_fps"], 1) for t in tabs],
        "delivered_fps": [round(t["delivered_fps"], 2) for t in tabs],
        "prompt_to_pixels_ms": {
            "median": 1000 * float(np.median(delays)) if delays else None,
            "p90": 1000 * float(np.percentile(delays, 90)) if delays else None,
            "n": len(delays),
        },
        "first_frame_s": [round(t["first_frame_s"], 2) for t in tabs],
    }


def codec_latency(resolution: int, frames: int = 8, repeats: int = 20) -> dict:
    """Server-side cost of the two ways to ship a chunk of ``frames`` frames: JPEG per frame (the
    studio's), or one fragmented-MP4 fragment (H.264, ultrafast, zerolatency) for MediaSource; ms, median.
    Smooth random frames (a blurred noise field) stand in for video."""
    import io

    import av
    from PIL import Image, ImageFilter

    from streamdit_jax.studio.protocol import encode_image

    rng = np.random.default_rng(0)
    video = []
    for _ in range(frames):
        noise = Image.fromarray(rng.integers(0, 256, (resolution, resolution, 3), np.uint8))
        video.append(np.asarray(noise.filter(ImageFilter.GaussianBlur(resolution / 32))))

    def jpeg() -> None:
        for frame in video:
            encode_image(frame, "jpeg")

    def fmp4() -> None:
        out = io.BytesIO()
        with av.open(
            out, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        ) as box:
            stream = box.add_stream("libx264", rate=8, options={"preset": "ultrafast", "tune": "zerolatency"})
            stream.width = stream.height = resolution
            stream.pix_fmt = "yuv420p"
            for frame in video:
                box.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            box.mux(stream.encode())

    result = {}
    for name, fn in (("jpeg_per_chunk_ms", jpeg), ("fmp4_per_chunk_ms", fmp4)):
        fn()
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - began))
        result[name] = round(statistics.median(times), 2)
    return {"resolution": resolution, "frames": frames, **result}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, server: subprocess.Popen, timeout: float = 600) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"streamdit serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("streamdit serve did not come up")


def device() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "CPU")  # fmt: skip
    return f"CPU ({os.cpu_count()} cores, {model})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/student")
    parser.add_argument("--sessions", default="1,2", help="session counts to measure, one after the other")
    parser.add_argument("--seconds", type=float, default=40.0, help="per session count")
    parser.add_argument(
        "--switch-every",
        type=float,
        default=3.3,
        help="seconds between prompt changes (not a whole number of chunks: every phase of a chunk)",
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--codecs", action="store_true", help="only time JPEG vs fragmented MP4 per chunk")
    args = parser.parse_args()
    if args.codecs:
        print(
            json.dumps({"device": device(), "codecs": [codec_latency(r) for r in (64, 256, 512)]}, indent=1)
        )
        return
    counts = [int(c) for c in args.sessions.split(",")]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "streamdit_jax.cli", "serve", "--checkpoint", args.checkpoint,
             "--port", str(port), "--max-sessions", str(max(counts))]  # fmt: skip
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL)
    try:
        wait_for_server(url, server)
        results = [asyncio.run(run_sessions(url, n, args.seconds, args.switch_every)) for n in counts]
    finally:
        server.terminate()
        server.wait(30)
    command = "python scripts/studio_bench.py " + shlex.join(sys.argv[1:])
    report = {"device": device(), "checkpoint": args.checkpoint, "seconds": args.seconds, "command": command,
              "results": results}  # fmt: skip
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    for row in results:
        delay = row["prompt_to_pixels_ms"]
        generated, delivered = (", ".join(map(str, row[k])) for k in ("generated_fps", "delivered_fps"))
        print(
            f"| {report['device']} | {row['sessions']} | {generated} | {delivered} | "
            f"{delay['median']:.0f} | {delay['p90']:.0f} |"
        )


if __name__ == "__main__":
    main()
