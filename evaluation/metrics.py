"""Every metric a study can compute: one record per dlib metric.

A record (`Metric`) holds all the project knows about one of dlib's metrics,
under its study name (what a study file lists in `metrics.names`): the table
rows it gives (`Row`: label, the key of dlib's evaluation results it reads,
display name, better when lower), its gin config
(`gin_configs/metrics/<name>.gin`), its tiny test config
(`tests/data/tiny_metrics*/<name>.gin`) and whether it fixes a factor across a
batch. The study's validation and defaults, the results table, the comparison
tables, the figures, the report and the tests ask `METRICS`; none spells a
metric's facts again.

It lives in `evaluation/`, not `sbd_plugin/`: these are facts of the study
runner's tables and configs, which only `evaluation` and the tests use, and
`sbd_plugin` never imports `evaluation`. Importing it is cheap (no dlib, no
TensorFlow).

Adding a metric: a gin-configurable `compute_*(ground_truth_data,
representation_function, random_state, ...)` bound as
`evaluation.evaluation_fn` in `gin_configs/metrics/<name>.gin`, a tiny copy
of that config for the tests, and one record in `_RECORDS` below.
"""
import dataclasses
from typing import Tuple

_RESULTS = "evaluation_results."  # dlib's prefix of a metric's result keys.
_DOWNSTREAM_SIZES = (10, 100, 1000, 10000)  # dlib's study train sizes
# Where the tiny test configs are: dlib_evaluate's end-to-end test globs
# tiny_metrics/*.gin, so only the study's default metrics live there.
_TINY = "tiny_metrics"
_TINY_EXTRA = "tiny_metrics_extra"


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of the results and comparison tables.

  Attributes:
    label: The row's name in results.csv, the tables and `metrics.primary`.
    result_key: The key of dlib's aggregated evaluation results it reads.
    display_name: Its title in figures.
    lower_is_better: True for scores of dependence between the latents (0 =
      independent), False for every score or accuracy. The tables report
      differences as they are; the report says how to read these rows.
  """
  label: str
  result_key: str
  display_name: str
  lower_is_better: bool = False


@dataclasses.dataclass(frozen=True)
class Metric:
  """One of dlib's metrics as a study computes it.

  Attributes:
    name: The study name (`metrics.names`, the metric's folder in a run).
    rows: The table rows it gives, in table order.
    fixes_a_factor: True if dlib samples factors with the dataset's
      `sample_factors` and then overwrites one across a batch (beta_vae.py,
      factor_vae.py): on a held-out training set some of its images fall in
      the held-out region.
    tiny_folder: The folder under tests/data of its tiny test config.
  """
  name: str
  rows: Tuple[Row, ...]
  fixes_a_factor: bool = False
  tiny_folder: str = _TINY_EXTRA

  @property
  def config(self):
    """Its gin config at dlib's study settings, relative to the repository."""
    return "gin_configs/metrics/%s.gin" % self.name

  @property
  def tiny_config(self):
    """Its tiny test config (few samples), relative to the repository."""
    return "tests/data/%s/%s.gin" % (self.tiny_folder, self.name)


def _row(label, key, display_name, lower_is_better=False):
  return Row(label, _RESULTS + key, display_name, lower_is_better)


def _downstream_rows(short, long):
  return tuple(_row("downstream_%s_%d" % (short, size),
                    "%d:mean_test_accuracy" % size,
                    "Downstream %s, %d train (test acc.)" % (long, size))
               for size in _DOWNSTREAM_SIZES)


# Every metric dlib ships, in the order listed in errors.
_RECORDS = (
    Metric("beta_vae", (_row("beta_vae", "eval_accuracy", "BetaVAE score"),),
           fixes_a_factor=True),
    Metric("factor_vae",
           (_row("factor_vae", "eval_accuracy", "FactorVAE score"),),
           fixes_a_factor=True, tiny_folder=_TINY),
    Metric("mig", (_row("mig", "discrete_mig", "MIG"),), tiny_folder=_TINY),
    Metric("dci", (
        _row("dci", "disentanglement", "DCI disentanglement"),
        _row("dci_completeness", "completeness", "DCI completeness"),
        _row("dci_informativeness", "informativeness_test",
             "DCI informativeness (test acc.)")), tiny_folder=_TINY),
    Metric("sap", (_row("sap", "SAP_score", "SAP score"),)),
    Metric("modularity_explicitness", (
        _row("modularity", "modularity_score", "Modularity"),
        _row("explicitness", "explicitness_score_test",
             "Explicitness (test)"))),
    Metric("irs", (_row("irs", "IRS", "IRS"),)),
    # dlib's unsupervised scores measure statistical dependence between the
    # latents: lower is better.
    Metric("unsupervised", (
        _row("gaussian_total_correlation", "gaussian_total_correlation",
             "Gaussian total correlation", lower_is_better=True),
        _row("gaussian_wasserstein_correlation",
             "gaussian_wasserstein_correlation",
             "Gaussian Wasserstein correlation", lower_is_better=True),
        _row("gaussian_wasserstein_correlation_norm",
             "gaussian_wasserstein_correlation_norm",
             "Gaussian Wasserstein corr. (normalised)",
             lower_is_better=True),
        _row("mutual_info_score", "mutual_info_score",
             "Mutual information score", lower_is_better=True))),
    Metric("downstream_logistic_regression",
           _downstream_rows("lr", "log. regression")),
    Metric("downstream_boosted_trees",
           _downstream_rows("gbt", "boosted trees")),
)


def _table(records):
  """name -> record; refuses a name or a row label given twice."""
  table, labels = {}, set()
  for record in records:
    own = [r.label for r in record.rows]
    taken = (({record.name} & set(table)) | (set(own) & labels) |
             {label for label in own if own.count(label) > 1})
    if taken:
      raise ValueError("Metric %r: %s registered twice." %
                       (record.name, ", ".join(sorted(taken))))
    table[record.name] = record
    labels |= set(own)
  return table


METRICS = _table(_RECORDS)
_ROWS = {row.label: row for record in _RECORDS for row in record.rows}

# Defaults of a study file's `metrics.names` (in table order) and
# `metrics.primary` (the first row of each: the metric's headline score).
DEFAULT_NAMES = ("mig", "factor_vae", "dci")
DEFAULT_PRIMARY = tuple(METRICS[name].rows[0].label for name in DEFAULT_NAMES)


def rows(names):
  """The table rows (`Row`) of the study metrics `names`, in order."""
  return [row for name in names for row in METRICS[name].rows]


def labels(names):
  """The row labels of the study metrics `names`, in order."""
  return [row.label for row in rows(names)]


def display_name(label):
  """A row's title in figures; an unknown label is its own title."""
  row = _ROWS.get(label)
  return row.display_name if row else label


def lower_is_better(label):
  """Whether a lower value of the row `label` is better."""
  row = _ROWS.get(label)
  return bool(row and row.lower_is_better)
