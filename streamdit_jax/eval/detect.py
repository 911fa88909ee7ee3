"""A detector for the shapes world: each object's colour, shape, position and size, from pixels alone.

Plain array code, no learned model. The backgrounds are neutral gray and the objects saturated, so a
pixel belongs to an object when its saturation (max − min of RGB) is high; its colour is the palette
entry whose chroma direction (RGB minus its gray level) is closest, which is unchanged by the soft,
gray-blended edges. Colours are distinct within a scene, so objects are indexed by colour. For each
colour with enough pixels: the bounding box (robust percentiles of the pixel coordinates) gives position
and size; the fill ratio (area over box) separates square (1), circle (π/4) and triangle/diamond (1/2),
and the triangle's centroid, 1/6 of its height below the box centre, separates it from the diamond.
``detector_scores`` scores a detection against a clip's true factors, ``detector_agreement`` against
another detection (the VAE's and the tiny decoder's evaluations).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from streamdit_jax.data.shapes import COLOUR_RGB, COLOURS, SHAPES

SATURATION = 0.3  # object pixels: max - min of RGB in [0, 1] above this (gray backgrounds have 0)
MIN_AREA = 0.002  # fraction of the frame an object must cover (8 pixels at 64x64)
_CHROMA = COLOUR_RGB - COLOUR_RGB.mean(axis=1, keepdims=True)
_CHROMA /= np.linalg.norm(_CHROMA, axis=1, keepdims=True)


class Detections(NamedTuple):
    """Per frame and per palette colour (``[T, len(COLOURS)]``); entries of absent colours are 0 / -1."""

    present: np.ndarray  # bool
    area: np.ndarray  # float32, fraction of the frame
    position: np.ndarray  # float32 [T, C, 2] bounding-box centre (y, x) as image fractions
    size: np.ndarray  # float32 bounding-box side (the larger one) as a fraction of min(H, W)
    shape: np.ndarray  # int32 index into SHAPES, -1 where absent
    touches_edge: np.ndarray  # bool: the box reaches the frame's border (size and shape unreliable)

    def dominant(self) -> np.ndarray:
        """[T] the colour covering most pixels in each frame (-1: no object)."""
        return np.where(self.present.any(axis=1), self.area.argmax(axis=1), -1)


def to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 frames, or float frames in [-1, 1], as float32 in [0, 1]."""
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    return (np.asarray(frames, np.float32) + 1.0) / 2.0


def classify_pixels(frames: np.ndarray) -> np.ndarray:
    """[T, H, W] palette index of each pixel of frames [T, H, W, 3] (-1: background)."""
    rgb = to_unit(frames)
    saturation = rgb.max(axis=-1) - rgb.min(axis=-1)
    chroma = rgb - rgb.mean(axis=-1, keepdims=True)
    colour = np.einsum("thwc,kc->thwk", chroma, _CHROMA).argmax(axis=-1)
    return np.where(saturation > SATURATION, colour, -1).astype(np.int32)


def detect(frames: np.ndarray) -> Detections:
    """Objects in frames [T, H, W, 3] (uint8, or float in [-1, 1])."""
    labels = classify_pixels(frames)
    t, h, w = labels.shape
    n = len(COLOURS)
    present = np.zeros((t, n), bool)
    area = np.zeros((t, n), np.float32)
    position = np.zeros((t, n, 2), np.float32)
    size = np.zeros((t, n), np.float32)
    shape = np.full((t, n), -1, np.int32)
    edge = np.zeros((t, n), bool)
    for i in range(t):
        for c in np.unique(labels[i]):
            if c < 0:
                continue
            ys, xs = np.nonzero(labels[i] == c)
            if len(ys) < MIN_AREA * h * w:
                continue
            y0, y1 = np.percentile(ys, [0.5, 99.5])
            x0, x1 = np.percentile(xs, [0.5, 99.5])
            box_h, box_w = y1 - y0 + 1.0, x1 - x0 + 1.0
            present[i, c] = True
            area[i, c] = len(ys) / (h * w)
            position[i, c] = ((y0 + y1 + 1.0) / 2.0 / h, (x0 + x1 + 1.0) / 2.0 / w)
            size[i, c] = max(box_h, box_w) / min(h, w)
            edge[i, c] = y0 <= 0 or x0 <= 0 or y1 >= h - 1 or x1 >= w - 1
            fill = len(ys) / (box_h * box_w)
            offset = (ys.mean() - (y0 + y1) / 2.0) / box_h  # triangle +1/6, others 0
            shape[i, c] = _shape(fill, offset)
    return Detections(present, area, position, size, shape, edge)


def _shape(fill: float, offset: float) -> int:
    if fill > 0.89:
        return SHAPES.index("square")
    if fill > 0.64:
        return SHAPES.index("circle")
    return SHAPES.index("triangle") if offset > 0.07 else SHAPES.index("diamond")


POSITION_TOLERANCE = 0.05  # a detected centre within 5% of the frame (3 pixels at 64x64) of the true one


def _seen(factors: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame, slot, colour) of every object at least 98% visible."""
    t, n = np.nonzero(factors["present"][None] & (factors["visibility"] >= 0.98))
    return t, n, factors["colour"][t, n]


def detector_scores(det: Detections, factors: dict) -> dict[str, np.ndarray]:
    """Per object and frame (:func:`_seen`), from the shapes detector's ``det``: its colour is found, its
    shape is right (objects clear of the border) and its position is within ``POSITION_TOLERANCE``."""
    t, n, c = _seen(factors)
    found = det.present[t, c]
    clear = found & ~det.touches_edge[t, c]
    error = np.abs(det.position[t, c] - factors["position"][t, n]).max(-1)
    return {
        "colour": found,
        "shape": (det.shape[t, c] == factors["shape"][t, n])[clear],
        "position": found & (error <= POSITION_TOLERANCE),
    }


def detector_agreement(det: Detections, reference: Detections, factors: dict) -> dict[str, np.ndarray]:
    """Per object and frame (:func:`_seen`): ``det`` finds it exactly when ``reference`` does, gives the
    same shape (both found, clear of the border) and a position within ``POSITION_TOLERANCE`` of it."""
    t, _, c = _seen(factors)
    found, ref_found = det.present[t, c], reference.present[t, c]
    both = found & ref_found
    clear = both & ~det.touches_edge[t, c] & ~reference.touches_edge[t, c]
    error = np.abs(det.position[t, c] - reference.position[t, c]).max(-1)
    return {
        "colour": found == ref_found,
        "shape": (det.shape[t, c] == reference.shape[t, c])[clear],
        "position": (error <= POSITION_TOLERANCE)[both],
    }
