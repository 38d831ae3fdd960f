"""Benchmarks of sbd_plugin: input, training, memory and metric speed.

`python -m evaluation.benchmark` (installed as `sbd_benchmark`) runs them;
`cli` has the flags. One module per part (input_speed, train_speed, memory,
metric_speed), plus machine (what it ran on), flops (decoder FLOPs, GPU
peaks), harness (what the parts share) and formatting (numbers, report).
"""
from evaluation.benchmark.cli import main
from evaluation.benchmark.input_speed import measure_input
from evaluation.benchmark.memory import measure_memory
from evaluation.benchmark.metric_speed import measure_metric
from evaluation.benchmark.train_speed import measure_train

__all__ = ["main", "measure_input", "measure_memory", "measure_metric",
           "measure_train"]
