"""Markdown rows of docs/evaluation.md's ablation table from ``eval.json`` files (``streamdit eval`` or
``streamdit demo``): held-out adherence, consistency, drift, seams, switch response and start-up (the
metrics of ``streamdit_jax.eval.metrics.METRICS`` with a ``column``).

    python scripts/ablation_rows.py NAME=runs/demo/eval.json [NAME=OTHER/eval.json ...]

``NAME=PATH@KEY`` takes another summary of the file: ``autoencoder_summary`` (the true videos through the
run's autoencoder) or ``truth_summary``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from streamdit_jax.eval.metrics import METRICS

COLUMNS = tuple(m for m in METRICS if m.column)  # the metrics with a column, in the summary's order


def row(name: str, summary: dict) -> str:
    cells = [m.cell(summary.get(m.key), "docs") + (m.remark(summary) if m.remark else "") for m in COLUMNS]
    return f"| {name} | " + " | ".join(cells) + " |"


def main(argv: list[str]) -> None:
    print("| run | " + " | ".join(m.column for m in COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    for arg in argv:
        name, _, path = arg.partition("=")
        path, _, key = path.partition("@")
        print(row(name, json.loads(Path(path).read_text())[key or "summary"]))


if __name__ == "__main__":
    main(sys.argv[1:])
