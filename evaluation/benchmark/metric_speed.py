"""Metrics benchmark: seconds per dlib metric at the study's settings.

DCI runs twice, side by side: dlib's sequential loop and the plugin's
parallel per-factor fits (sbd_plugin/dlib_bridge/parallel_metrics.py).
"""
import time

import numpy as np

from evaluation.benchmark import formatting
from evaluation.benchmark import harness

METRICS = ("mig", "factor_vae", "dci")
# DCI's gradient boosted trees at study settings, sequential then parallel,
# take longer than the rest of a full run on a 2-core machine, so it runs
# only when asked for.
DEFAULT_METRICS = ("mig", "factor_vae")
# Bindings shrinking the metrics for --quick (the full run uses the gin files).
QUICK_METRIC_BINDINGS = {
    "mig": ["mig.num_train = 200"],
    "factor_vae": ["factor_vae_score.num_variance_estimate = 200",
                   "factor_vae_score.num_train = 20",
                   "factor_vae_score.num_eval = 20",
                   "factor_vae_score.batch_size = 8"],
    "dci": ["dci.num_train = 200", "dci.num_test = 100"],
}


def random_linear_representation(observation_shape, num_latent=10, seed=0):
  """A fixed random projection of the pixels to `num_latent` codes."""
  weights = np.random.RandomState(seed).normal(
      size=(int(np.prod(observation_shape)), num_latent)).astype(np.float32)

  def representation(observations):
    flat = np.reshape(np.asarray(observations, np.float32),
                      (len(observations), -1))
    return flat.dot(weights)

  return representation


def _run_metric(metric, dataset_name, quick, bindings=()):
  """Runs one metric once at the settings of gin_configs/metrics/*.gin.

  Args:
    metric: Name from METRICS.
    dataset_name: Dataset name.
    quick: Whether to apply QUICK_METRIC_BINDINGS.
    bindings: Further gin bindings, applied last.

  Returns:
    Seconds of the metric's computation, and its scores (dict).
  """
  from disentanglement_lib.evaluation import evaluate  # pylint: disable=g-import-not-at-top,unused-import
  from disentanglement_lib.evaluation.metrics import dci  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import factor_vae  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import mig  # pylint: disable=g-import-not-at-top
  fns = {"mig": mig.compute_mig, "factor_vae": factor_vae.compute_factor_vae,
         "dci": dci.compute_dci}
  config = harness.gin_config_path("metrics", metric + ".gin")
  all_bindings = ["dataset.name = %r" % dataset_name]
  if quick:
    all_bindings += QUICK_METRIC_BINDINGS[metric]
  with harness.parsed_gin([config], all_bindings + list(bindings)):
    data = harness.dataset(dataset_name)
    representation = random_linear_representation(data.observation_shape)
    start = time.perf_counter()
    scores = fns[metric](data, representation, np.random.RandomState(0),
                         None)
    return time.perf_counter() - start, scores


def measure_metric(metric, dataset_name, quick, bindings=()):
  """Seconds of one metric at the settings of gin_configs/metrics/*.gin."""
  return _run_metric(metric, dataset_name, quick, bindings)[0]


def measure_dci_parallel(dataset_name, quick, bindings=()):
  """DCI with dlib's sequential loop and with the plugin's parallel fits.

  Both in this process, on the same data and representation (same seed),
  the sequential run first (`metric_parallelism.n_jobs = 1`), then the
  default number of workers (sbd_plugin/dlib_bridge/parallel_metrics.py),
  whose time includes starting the worker processes.

  Args:
    dataset_name: Dataset name.
    quick: Whether to apply QUICK_METRIC_BINDINGS.
    bindings: Further gin bindings, applied last.

  Returns:
    Dict with `jobs` (workers of the parallel run), `seconds` and `scores`,
    each a dict with keys "sequential" and "parallel".
  """
  from sbd_plugin.dlib_bridge import parallel_metrics  # pylint: disable=g-import-not-at-top
  sequential = ["%s.n_jobs = 1" % parallel_metrics.CONFIGURABLE]
  seconds, scores = {}, {}
  seconds["sequential"], scores["sequential"] = _run_metric(
      "dci", dataset_name, quick, list(bindings) + sequential)
  print("  dci n_jobs=1 done: %.1f s" % seconds["sequential"], flush=True)
  with harness.parsed_gin([], list(bindings)):
    jobs = parallel_metrics.metric_jobs()
  seconds["parallel"], scores["parallel"] = _run_metric(
      "dci", dataset_name, quick, bindings)
  print("  dci n_jobs=%d done: %.1f s" % (jobs, seconds["parallel"]),
        flush=True)
  return {"jobs": jobs, "seconds": seconds, "scores": scores}


def _dci_side_by_side(dataset, quick, bindings):
  """Table rows and notes of `measure_dci_parallel`."""
  dci = measure_dci_parallel(dataset, quick, bindings)
  seconds, scores, jobs = dci["seconds"], dci["scores"], dci["jobs"]
  rows = [["dci, n_jobs=1 (dlib's sequential loop)",
           "%.1f" % seconds["sequential"]],
          ["dci, n_jobs=%d (plugin default)" % jobs,
           "%.1f" % seconds["parallel"]]]
  same = scores["sequential"] == scores["parallel"]
  notes = ["dci speed-up: %s (n_jobs=1 / n_jobs=%d)" % (
      formatting.format_ratio(formatting.ratio(seconds["sequential"],
                                               seconds["parallel"])), jobs),
           "dci scores identical (n_jobs=1 vs n_jobs=%d): %s" % (
               jobs, "yes" if same else "NO: %r vs %r" % (
                   scores["sequential"], scores["parallel"]))]
  return rows, notes


def report_metrics(report, metrics, dataset, quick, bindings=()):
  """Measures and reports the metrics part.

  DCI is measured twice, sequential (dlib's loop) and parallel (the
  plugin's default), with the speed-up and whether the scores agree.

  Args:
    report: formatting.Report to print to.
    metrics: Names from METRICS.
    dataset: Dataset name.
    quick: Whether to use QUICK_METRIC_BINDINGS (smoke run).
    bindings: Further gin bindings for every metric (e.g. smaller sizes).
  """
  report.section("Metrics: seconds at %s settings on %s, random linear "
                 "representation (10-d)" % (
                     "--quick" if quick else
                     "dlib study (gin_configs/metrics)", dataset))
  rows, notes = [], []
  if bindings:
    notes.append("settings changed by --metric-binding: %s" %
                 "; ".join(bindings))
  for metric in metrics:
    if metric == "dci":
      dci_rows, dci_notes = _dci_side_by_side(dataset, quick, bindings)
      rows += dci_rows
      notes += dci_notes
      continue
    seconds = measure_metric(metric, dataset, quick, bindings)
    print("  %s done: %.1f s" % (metric, seconds), flush=True)
    rows.append([metric, "%.1f" % seconds])
  report.table(["metric", "seconds"], rows)
  for note in notes:
    report.note(note)
  if "dci" not in metrics:
    report.note("DCI not run (slow); add it with --metrics mig,factor_vae,dci.")
