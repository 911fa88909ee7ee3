"""Rows of docs/benchmarks.md's table from a benchmark's JSON."""

from __future__ import annotations

COLUMNS = (
    "preset", "resolution", "device", "mode", "step ms", "video FPS", "first frame s", "peak GiB", "MFU",
    "command",
)  # fmt: skip


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


TABLE_HEADER = _row(*COLUMNS) + "\n" + _row(*("---",) * len(COLUMNS))


def _ms(step: dict) -> str:
    return f"{step['median']:.1f} (p10–p90 {step['p10']:.1f}–{step['p90']:.1f})"


def table_rows(result: dict, preset: str, command: str) -> list[str]:
    """Markdown rows: one per rollout mode, one for a training step, one for the peer comparison."""
    resolution = "x".join(str(v) for v in result["resolution"])
    device = result["device"] + (f" x{result['device_count']}" if result["device_count"] > 1 else "")
    head, cmd = (preset, resolution, device), f"`{command}`"
    if result["bench"] == "rollout":
        scheme = ",".join(str(v) for v in result["scheme"])
        rows = []
        for mode, r in result["modes"].items():
            label = f"stream ({scheme}), guidance {result['guidance']:g}, {result['dtype']}, {mode}"
            if mode == "decoded":
                label += f" ({result.get('decoder', 'full')} decoder)"
            first = f"{r['first_frame_s']:.2f} (cold {result['cold_first_frame_s']:.1f})"
            fps, peak, mfu = f"{r['video_fps']:.1f}", f"{result['peak_gib']:.2f}", f"{100 * r['mfu']:.1f}%"
            rows.append(_row(*head, label, _ms(r["step_ms"]), fps, first, peak, mfu, cmd))
        return rows
    if result["bench"] == "train":
        mesh = "x".join(str(v) for v in result["mesh"].values())
        label = (
            f"train, batch {result['batch_size']}, mesh {mesh}, {result['dtype']}, remat {result['remat']}"
        )
        peak, mfu = f"{max(result['peak_gib_per_device']):.2f}", f"{100 * result['mfu']:.1f}%"
        return [_row(*head, label, _ms(result["step_ms"]), "–", "–", peak, mfu, cmd)]
    rows = []
    for phase, r in result["phases"].items():
        label = (
            f"{phase}, batch {r['batch']}, {r['tokens']} tokens, {result['dtype']}: JAX / PyTorch "
            f"{r['jax_over_torch']:.2f}x"
        )
        step = f"JAX {r['jax']['step_ms']['median']:.1f}, PyTorch {r['torch']['step_ms']['median']:.1f}"
        rows.append(_row(*head, label, step, "–", "–", "–", "–", cmd))
    return rows
