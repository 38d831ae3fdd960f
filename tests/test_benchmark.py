"""Tests of the benchmark command (evaluation/benchmark/)."""
import math
import re

import pytest

from evaluation.benchmark import flops
from evaluation.benchmark import formatting
from evaluation.benchmark import train_settings
from evaluation.markdown import markdown_table
from tests.helpers import run_tool


def test_ratio_and_overhead_helpers():
  assert formatting.ratio(30.0, 2.0) == 15.0
  assert math.isnan(formatting.ratio(1.0, 0.0))
  assert math.isnan(formatting.ratio(None, 2.0))
  assert formatting.input_overhead(95.0, 100.0) == pytest.approx(0.05)
  assert formatting.input_overhead(100.0, 100.0) == 0.0
  assert formatting.format_ratio(12.345) == "12.3x"
  assert formatting.format_ratio(float("nan")) == "n/a"
  assert formatting.format_percent(0.0123) == "1.2%"
  assert formatting.format_percent(-0.004) == "-0.4%"
  assert formatting.format_percent(0.00042) == "0.04%"
  assert formatting.format_rate(27345.6) == "27346"
  assert formatting.format_rate(2.345) == "2.35"


def test_sbd_flops_match_a_hand_computation():
  # Per image, per conv layer: 2 * H * W * k * k * Cin * Cout.
  hand = (2 * 64 * 64 * 4 * 4 * (10 + 2) * 64 +   # broadcast grid -> 64
          2 * 64 * 64 * 4 * 4 * 64 * 64 +          # 64 -> 64
          2 * 64 * 64 * 4 * 4 * 64 * 3)            # 64 -> RGB logits
  assert hand == 662700032
  assert flops.sbd_forward_flops((64, 64, 3), 10) == hand
  assert flops.sbd_forward_flops((64, 64, 1), 10, num_layers=3,
                                 kernel_size=3, output_kernel_size=3) == (
                                     2 * 4096 * 9 * (12 * 64 + 2 * 64 * 64
                                                     + 64 * 1))


def test_profiler_counts_the_sbd_convolutions_like_the_formula():
  counted = flops.profiled_decoder_flops(
      "spatial_broadcast_decoder", (64, 64, 3), op_types=["Conv2D"])
  assert counted == flops.sbd_forward_flops((64, 64, 3), 10)
  # All ops adds bias adds etc., a fraction of a percent.
  total = flops.profiled_decoder_flops("spatial_broadcast_decoder",
                                       (64, 64, 3))
  assert counted < total < 1.01 * counted


def test_peak_table_lookup():
  assert flops.peak_tflops("NVIDIA A100-SXM4-40GB") == 19.5
  assert flops.peak_tflops("NVIDIA H100 80GB HBM3 H100 SXM") == 66.9
  assert flops.peak_tflops("Tesla T4") == 8.1
  assert flops.peak_tflops("NVIDIA L40S") == 91.6  # not "L40" or "L4"
  assert flops.peak_tflops("Some Unknown GPU") is None


def test_markdown_table():
  lines = markdown_table(["a", "b"], [[1, "x"]])
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


def test_train_part_runs_alone():
  # Alone, nothing else has imported dlib's train module before the model
  # config is parsed for its batch size ("No configurable matching
  # 'encoder'" before the fix). Quick sizes, but no --quick: that fixes the
  # batch at 2 and so never reads the config's.
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--parts", "train",
                   "--train-dataset", "dummy_data", "--decoders",
                   "deconv_decoder", "--no-stock-train", "--repeats", "1",
                   "--train-seconds", "0.2"], timeout=300)
  out = proc.stdout
  assert re.search(r"^- CPU flags: \S+", out, re.M), out
  assert "== Input pipeline" not in out, out
  assert ("== Training steps/s on CPU: dlib model_fn train_op, dummy_data, "
          "batch 16 ==") in out, out
  assert re.search(r"^input overhead cpu deconv_decoder \(plugin\): "
                   r"-?\d+\.\d+%$", out, re.M), out


def test_unknown_part_is_rejected():
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--parts",
                   "input,bogus"], check=False, timeout=120)
  assert proc.returncode == 2
  assert "bogus" in proc.stdout


def test_metrics_part_times_dci_sequential_and_parallel():
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--quick",
                   "--parts", "metrics", "--metrics", "dci",
                   "--metric-binding", "dci.num_train = 100",
                   "--metric-binding", "dci.num_test = 50"], timeout=600)
  out = proc.stdout
  assert ("settings changed by --metric-binding: dci.num_train = 100; "
          "dci.num_test = 50") in out, out
  assert re.search(r"^dci, n_jobs=1 \(dlib's sequential loop\) +\d+\.\d$",
                   out, re.M), out
  assert re.search(r"^dci, n_jobs=\d+ \(plugin default\) +\d+\.\d$", out,
                   re.M), out
  assert re.search(r"^dci speed-up: \d+\.\dx \(n_jobs=1 / n_jobs=\d+\)$", out,
                   re.M), out
  assert re.search(r"^dci scores identical \(n_jobs=1 vs n_jobs=\d+\): yes$",
                   out, re.M), out


def test_fp32_peak_per_cycle_by_cpu_generation():
  avx2 = ["avx", "avx2", "fma"]
  # This machine's EPYC (family 0x19: Zen 3): 2 FMA pipes x 8 lanes x 2.
  assert train_settings.fp32_flops_per_cycle("AuthenticAMD", 0x19, 1,
                                             avx2)[0] == 32
  assert train_settings.fp32_flops_per_cycle("AuthenticAMD", 0x17, 0x31,
                                             avx2)[0] == 32  # Zen 2
  assert train_settings.fp32_flops_per_cycle("AuthenticAMD", 0x17, 0x01,
                                             avx2)[0] == 16  # Zen 1: 128-bit
  assert train_settings.fp32_flops_per_cycle(
      "GenuineIntel", 6, 0x55, avx2 + ["avx512f"])[0] == 64
  assert train_settings.fp32_flops_per_cycle("GenuineIntel", 6, 0x2a,
                                             ["avx"])[0] == 16
  peak = train_settings.cpu_fp32_peak()
  assert peak["peak"] == pytest.approx(
      peak["cores"] * peak["mhz"] * 1e6 * peak["flops_per_cycle"])


def test_train_settings_part_compares_onednn_threads_and_xla():
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--quick",
                   "--parts", "train_settings"], timeout=600)
  out = proc.stdout
  assert "== Training settings on CPU (oneDNN, threads, XLA)" in out, out
  assert "== Input pipeline" not in out, out
  assert re.search(r"^FP32 peak: \d+ cores x \d+ MHz .* x \d+ FLOP/cycle .* = "
                   r"[\d.]+ GFLOP/s$", out, re.M), out
  decoders = ("deconv_decoder", "spatial_broadcast_decoder")
  for decoder in decoders:
    for setting in train_settings.SETTINGS:
      # A measured row: steps/s, ratio, CPU s/step, cores, GFLOP/s, % of
      # peak, GFLOP per CPU s, % of one core's peak.
      assert re.search(r"^%s +%s +[\d.]+ +[\d.]+x +[\d.]+ +[\d.]+ +[\d.]+ +"
                       r"[\d.]+%% +[\d.]+ +[\d.]+%%$" % (
                           decoder, re.escape(setting.label)), out, re.M), out
      if setting.key != "off":
        assert re.search(r"^ratio %s %s: \d+\.\dx \(steps/s vs off, median "
                         r"of 2 rounds\)$" % (decoder, setting.key), out,
                         re.M), out
        assert re.search(r"^equivalence %s %s vs off: loss of step 3 \S+ vs "
                         r"\S+, relative difference \d\.\de[-+]\d+ "
                         % (decoder, setting.key), out, re.M), out
    # Same setting, same seed, two processes: the same bits.
    assert ("reproducible %s oneDNN on, two processes: losses of 3 steps "
            "bit-identical: yes; variables identical: yes" % decoder) in out, (
                out)
  # Each child ran what it was asked to: oneDNN off has no oneDNN kernels,
  # the thread counts reached TensorFlow, XLA compiled clusters.
  assert re.search(r"^setting off: .*oneDNN False; .*deconv_decoder: 0 "
                   r"oneDNN and 0 XLA", out, re.M), out
  assert re.search(r"^setting on: .*oneDNN True; .*deconv_decoder: [1-9]\d* "
                   r"oneDNN and 0 XLA", out, re.M), out
  assert re.search(r"^setting on_1thread: .*intra-op 1, inter-op 1 ", out,
                   re.M), out
  assert re.search(r"^setting on_xla: .*deconv_decoder: \d+ oneDNN and "
                   r"[1-9]\d* XLA cluster ops", out, re.M), out


def test_portable_part_compares_training_and_a_metric_with_and_without():
  proc = run_tool(["python", "-m", "evaluation.benchmark", "--quick",
                   "--parts", "portable"], timeout=900)
  out = proc.stdout
  assert "== Portable mode's cost: training dummy_data batch 2, metric mig" in (
      out), out
  # The CPU flags are printed with the numbers.
  assert re.search(r"^- CPU flags: \S+", out, re.M), out
  for decoder in ("deconv_decoder", "spatial_broadcast_decoder"):
    assert re.search(r"^train %s \(steps/s\) +[\d.]+ +[\d.]+ +\d+\.\dx$" %
                     decoder, out, re.M), out
  assert re.search(r"^mig \(seconds\) +[\d.]+ +[\d.]+ +\d+\.\dx$", out,
                   re.M), out
  # Each mode ran what it was asked to.
  assert "default: oneDNN True" in out, out
  assert "portable: oneDNN False, intra-op 1, inter-op 1" in out, out
  assert "each mode the same in every round: yes" in out, out
