"""Metrics benchmark: seconds per dlib metric at the study's settings."""
import time

import numpy as np

from evaluation.benchmark import harness

METRICS = ("mig", "factor_vae", "dci")
# DCI's gradient boosted trees at study settings take longer than the rest of
# a full run on a 2-core machine, so it runs only when asked for.
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


def measure_metric(metric, dataset_name, quick):
  """Seconds of one metric at the settings of gin_configs/metrics/*.gin."""
  from disentanglement_lib.evaluation import evaluate  # pylint: disable=g-import-not-at-top,unused-import
  from disentanglement_lib.evaluation.metrics import dci  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import factor_vae  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import mig  # pylint: disable=g-import-not-at-top
  fns = {"mig": mig.compute_mig, "factor_vae": factor_vae.compute_factor_vae,
         "dci": dci.compute_dci}
  config = harness.gin_config_path("metrics", metric + ".gin")
  bindings = ["dataset.name = %r" % dataset_name]
  if quick:
    bindings += QUICK_METRIC_BINDINGS[metric]
  with harness.parsed_gin([config], bindings):
    data = harness.dataset(dataset_name)
    representation = random_linear_representation(data.observation_shape)
    start = time.perf_counter()
    fns[metric](data, representation, np.random.RandomState(0), None)
    return time.perf_counter() - start


def report_metrics(report, metrics, dataset, quick):
  """Measures and reports the metrics part.

  Args:
    report: formatting.Report to print to.
    metrics: Names from METRICS.
    dataset: Dataset name.
    quick: Whether to use QUICK_METRIC_BINDINGS (smoke run).
  """
  report.section("Metrics: seconds at %s settings on %s, random linear "
                 "representation (10-d)" % (
                     "--quick" if quick else
                     "dlib study (gin_configs/metrics)", dataset))
  rows = []
  for metric in metrics:
    seconds = measure_metric(metric, dataset, quick)
    print("  %s done: %.1f s" % (metric, seconds), flush=True)
    rows.append([metric, "%.1f" % seconds])
  report.table(["metric", "seconds"], rows)
  if "dci" not in metrics:
    report.note("DCI not run (slow); add it with --metrics mig,factor_vae,dci.")
