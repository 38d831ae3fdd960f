"""Tests of the benchmark command (evaluation/benchmark.py)."""
import math
import re

import pytest

from evaluation import benchmark
from tests.conftest import run_tool


def test_ratio_and_overhead_helpers():
  assert benchmark.ratio(30.0, 2.0) == 15.0
  assert math.isnan(benchmark.ratio(1.0, 0.0))
  assert math.isnan(benchmark.ratio(None, 2.0))
  assert benchmark.input_overhead(95.0, 100.0) == pytest.approx(0.05)
  assert benchmark.input_overhead(100.0, 100.0) == 0.0
  assert benchmark.format_ratio(12.345) == "12.3x"
  assert benchmark.format_ratio(float("nan")) == "n/a"
  assert benchmark.format_percent(0.0123) == "1.2%"
  assert benchmark.format_percent(-0.004) == "-0.4%"
  assert benchmark.format_percent(0.00042) == "0.04%"
  assert benchmark.format_rate(27345.6) == "27346"
  assert benchmark.format_rate(2.345) == "2.35"


def test_sbd_flops_match_a_hand_computation():
  # Per image, per conv layer: 2 * H * W * k * k * Cin * Cout.
  hand = (2 * 64 * 64 * 4 * 4 * (10 + 2) * 64 +   # broadcast grid -> 64
          2 * 64 * 64 * 4 * 4 * 64 * 64 +          # 64 -> 64
          2 * 64 * 64 * 4 * 4 * 64 * 3)            # 64 -> RGB logits
  assert hand == 662700032
  assert benchmark.sbd_forward_flops((64, 64, 3), 10) == hand
  assert benchmark.sbd_forward_flops((64, 64, 1), 10, num_layers=3,
                                     kernel_size=3, output_kernel_size=3) == (
                                         2 * 4096 * 9 * (12 * 64 + 2 * 64 * 64
                                                         + 64 * 1))


def test_profiler_counts_the_sbd_convolutions_like_the_formula():
  counted = benchmark.profiled_decoder_flops(
      "spatial_broadcast_decoder", (64, 64, 3), op_types=["Conv2D"])
  assert counted == benchmark.sbd_forward_flops((64, 64, 3), 10)
  # All ops adds bias adds etc., a fraction of a percent.
  total = benchmark.profiled_decoder_flops("spatial_broadcast_decoder",
                                           (64, 64, 3))
  assert counted < total < 1.01 * counted


def test_peak_table_lookup():
  assert benchmark.peak_tflops("NVIDIA A100-SXM4-40GB") == 19.5
  assert benchmark.peak_tflops("NVIDIA H100 80GB HBM3 H100 SXM") == 66.9
  assert benchmark.peak_tflops("Tesla T4") == 8.1
  assert benchmark.peak_tflops("NVIDIA L40S") == 91.6  # not "L40" or "L4"
  assert benchmark.peak_tflops("Some Unknown GPU") is None


def test_markdown_table():
  lines = benchmark.markdown_table(["a", "b"], [[1, "x"]])
  assert lines == ["| a | b |", "|---|---|", "| 1 | x |"]


def test_quick_run_prints_every_section_and_ratio():
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--quick"],
                  timeout=300)
  out = proc.stdout
  for title in ("== Machine ==", "== Input pipeline", "== Training steps/s on "
                "CPU", "== Resident memory", "== Metrics", "== Run =="):
    assert title in out, out
  assert re.search(r"^input ratio dummy_data: \d+\.\dx \(plugin / stock\)$",
                   out, re.M), out
  for decoder in ("deconv_decoder", "spatial_broadcast_decoder"):
    assert re.search(r"^input overhead cpu %s \(plugin\): -?\d+\.\d+%%$"
                     % decoder, out, re.M), out
  assert re.search(r"^mig +\d+\.\d$", out, re.M), out
  assert re.search(r"load average at end: [\d.]+ [\d.]+ [\d.]+", out), out


def test_unknown_part_is_rejected():
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--parts",
                   "input,bogus"], check=False, timeout=120)
  assert proc.returncode == 2
  assert "bogus" in proc.stdout
