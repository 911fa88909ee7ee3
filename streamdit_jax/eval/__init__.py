"""Evaluation on known truth: a detector for the shapes world and the metrics of a generated stream
(``METRICS``: every metric's ``Metric`` entry, which all score readers go by)."""

from streamdit_jax.eval.detect import Detections, detect
from streamdit_jax.eval.metrics import METRICS, Segment, classify_motion, evaluate
from streamdit_jax.eval.registry import Metric

__all__ = ["METRICS", "Detections", "Metric", "Segment", "classify_motion", "detect", "evaluate"]
