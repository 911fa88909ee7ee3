"""Evaluation on known truth: a detector for the shapes world and the metrics of a generated stream."""

from streamdit_jax.eval.detect import Detections, detect
from streamdit_jax.eval.metrics import Segment, classify_motion, evaluate

__all__ = ["Detections", "Segment", "classify_motion", "detect", "evaluate"]
