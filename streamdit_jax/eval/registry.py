"""How a metric is declared: one ``Metric`` entry that every reader of the scores goes by.

The entries themselves are ``metrics.METRICS``, in the order of the summary (eval.json's ``summary``, the
rows of eval.md, what ``streamdit eval`` prints). Each entry says how one stream's score is computed
(``score``, given a ``metrics.Stream`` or, for ``source="streaming"``, a ``metrics.StreamRun``), where it
sits in a stream's scores (``path``), how the streams' scores are summarised (``summary``), how it is
shown (``kind``, ``digits``) and in which tables: report.png's targets table (``label``, ``target``),
the docs' ablation rows (``column``, ``remark``) and eval.md's table per stream (``stream_column``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


def mean(values: Iterable, reduce: Callable = np.mean) -> float:
    """The mean of the values that are neither None nor NaN; NaN if none is."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    return float(reduce(values)) if values else math.nan


def median(values: Iterable) -> float:
    return mean(values, np.median)


def mean_of_all(lists: Iterable) -> float:
    """The mean over every entry of every stream's list (one per switch, say)."""
    return mean(v for values in lists for v in values or ())


def count_none(lists: Iterable) -> int:
    """How many entries of every stream's list are None (a switch never followed, say)."""
    return sum(v is None for values in lists for v in values or ())


STYLES = ("summary", "report", "docs", "stream")  # eval.md's summary, report.png, ablation rows, per stream


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric: how a stream's score is computed, summarised and shown."""

    key: str  # its key in the summary (eval.json's "summary", eval.md's row)
    score: Callable[[Any], Any] | None  # one stream's score; None: it only summarises another's (``path``)
    source: str = "frames"  # "frames": by ``evaluate``, given a Stream; "streaming": given a StreamRun
    path: tuple[str, ...] = ()  # where a stream's score sits in its scores; () : (key,)
    summary: Callable[[list], float] | None = mean  # of the streams' scores; None: not in the summary
    kind: str = "value"  # "fraction": shown as a percentage; "points": a difference, signed in docs rows
    digits: int = 2  # decimals where it is not shown as a percentage
    label: str = ""  # its row in report.png's table of targets; "": not there
    target: str = ""  # docs/evaluation.md's target, shown beside it in that table
    column: str = ""  # its column in scripts/ablation_rows.py (docs/evaluation.md's tables); "": none
    remark: Callable[[dict], str] | None = None  # text after that column's cell, from the whole summary
    stream_column: str = ""  # its column in eval.md's table per stream; "": none

    def __post_init__(self):
        if not self.path:
            object.__setattr__(self, "path", (self.key,))

    def read(self, scores: dict) -> Any:
        """This metric's score in one stream's scores; None where they lack it (older runs)."""
        for step in self.path:
            if not isinstance(scores, dict) or step not in scores:
                return None
            scores = scores[step]
        return scores

    def summarise(self, streams: Sequence[dict]) -> float:
        return self.summary([self.read(scores) for scores in streams])

    def fmt(self, style: str) -> str:
        """The format of its values in one of ``STYLES``."""
        plain = f"{{:.{self.digits}f}}"
        if style == "summary":
            return "{:.3f}"
        if style == "stream" or self.kind == "value":
            return plain
        if self.kind == "fraction":
            return "{:.1%}" if style == "docs" else "{:.0%}"
        return f"{{:+.{self.digits}f}}" if style == "docs" else plain

    def cell(self, value: float | None, style: str) -> str:
        """``value`` in ``style``; "" where it is missing or NaN."""
        return "" if value is None or not np.isfinite(value) else self.fmt(style).format(value)


def scores_of(metrics: Sequence[Metric], source: str, context: Any) -> dict:
    """The scores of the ``metrics`` of ``source`` computed on ``context``, nested by their paths."""
    scores: dict = {}
    for metric in metrics:
        if metric.source == source and metric.score is not None:
            *outer, last = metric.path
            place = scores
            for step in outer:
                place = place.setdefault(step, {})
            place[last] = metric.score(context)
    return scores
