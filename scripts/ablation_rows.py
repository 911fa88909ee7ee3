"""Markdown rows of docs/evaluation.md's ablation table from ``eval.json`` files (``streamdit eval`` or
``streamdit demo``): held-out adherence, consistency, drift, seams, switch response and start-up.

    python scripts/ablation_rows.py NAME=runs/demo/eval.json [NAME=OTHER/eval.json ...]

``NAME=PATH@KEY`` takes another summary of the file: ``autoencoder_summary`` (the true videos through the
run's autoencoder) or ``truth_summary``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

COLUMNS = (
    ("colour", "colour_adherence", "{:.1%}"),
    ("shape", "shape_adherence", "{:.1%}"),
    ("motion", "motion_adherence", "{:.1%}"),
    ("identity", "identity", "{:.1%}"),
    ("size stability", "size_stability", "{:.1%}"),
    ("presence", "presence", "{:.1%}"),
    ("objects a frame", "objects_per_frame", "{:.2f}"),
    ("drift (points)", "drift_adherence_points", "{:+.1f}"),
    ("seam ratio", "seam_ratio", "{:.2f}"),
    ("switch response (chunks)", "switch_response_chunks", "{:.1f}"),
    ("start-up (s)", "startup_seconds", "{:.2f}"),
)


def row(name: str, summary: dict) -> str:
    cells = []
    for _, key, fmt in COLUMNS:
        value = summary.get(key, math.nan)
        cells.append("" if value is None or math.isnan(value) else fmt.format(value))
    never = summary.get("switches_never_followed", 0)
    if never:
        cells[[key for _, key, _ in COLUMNS].index("switch_response_chunks")] += f" ({never:g} never)"
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str]) -> None:
    print("| run | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for arg in argv:
        name, _, path = arg.partition("=")
        path, _, key = path.partition("@")
        print(row(name, json.loads(Path(path).read_text())[key or "summary"]))


if __name__ == "__main__":
    main(sys.argv[1:])
