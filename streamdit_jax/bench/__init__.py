"""Benchmarks (docs/performance.md): the streaming rollout, the training step, and a PyTorch peer.

Each returns a JSON-able dict; :func:`table_rows` turns one into rows of docs/benchmarks.md's table.
"""

from streamdit_jax.bench.flops import forward_flops, rollout_step_flops, train_step_flops
from streamdit_jax.bench.report import TABLE_HEADER, table_rows
from streamdit_jax.bench.rollout import bench_rollout, random_stream_model
from streamdit_jax.bench.train import bench_train

__all__ = [
    "TABLE_HEADER",
    "bench_rollout",
    "bench_train",
    "forward_flops",
    "random_stream_model",
    "rollout_step_flops",
    "table_rows",
    "train_step_flops",
]
