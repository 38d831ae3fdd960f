"""evaluation/metrics.py: one record per metric, and the files it names.

Parse-free checks (no gin, no dlib): every record's configs exist and agree
with it, every row label is unique, and the modules that used to hold their
own copy of a metric's facts now answer from the record.
"""
import glob
import os

import pytest

from evaluation import metrics as metrics_lib
from evaluation import study as study_lib
from tests.helpers import REPO
from tests.helpers import tiny_metric_config

RECORDS = list(metrics_lib.METRICS.values())
# The bindings that choose what a metric config computes: its function and,
# for the downstream task, its classifier.
_CHOOSING = ("evaluation.evaluation_fn", "predictor.predictor_fn")


def _choices(path):
  """The choosing bindings of a gin file, read as text: name -> value."""
  with open(path) as f:
    pairs = [line.split("=", 1) for line in f
             if "=" in line and not line.lstrip().startswith("#")]
  return {k.strip(): v.strip() for k, v in pairs if k.strip() in _CHOOSING}


def test_every_record_has_rows_and_every_row_label_is_unique():
  labels = [row.label for record in RECORDS for row in record.rows]
  assert all(record.rows for record in RECORDS)
  assert len(labels) == len(set(labels))
  assert labels == metrics_lib.labels(metrics_lib.METRICS)
  for record in RECORDS:
    for row in record.rows:
      assert row.result_key.startswith("evaluation_results."), row
      assert row.display_name and metrics_lib.display_name(
          row.label) == row.display_name


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.name)
def test_every_record_names_a_config_and_a_tiny_config_that_agree(record):
  config = os.path.join(REPO, record.config)
  tiny = tiny_metric_config(record.name)
  assert os.path.isfile(config), config
  assert os.path.isfile(tiny), tiny
  assert tiny == os.path.join(REPO, record.tiny_config)
  # The tiny copy computes the same metric, only on fewer samples.
  choices = _choices(config)
  assert "evaluation.evaluation_fn" in choices
  assert _choices(tiny) == choices


def test_every_metric_config_and_tiny_config_belongs_to_a_record():
  def names(pattern):
    return sorted(os.path.splitext(os.path.basename(p))[0]
                  for p in glob.glob(os.path.join(REPO, pattern)))
  assert names("gin_configs/metrics/*.gin") == sorted(metrics_lib.METRICS)
  assert names("tests/data/tiny_metrics*/*.gin") == sorted(
      metrics_lib.METRICS)
  # dlib_evaluate's end-to-end test globs tiny_metrics/: the defaults only.
  assert names("tests/data/tiny_metrics/*.gin") == sorted(
      metrics_lib.DEFAULT_NAMES)


def test_study_defaults_come_from_the_records():
  assert study_lib.METRICS == metrics_lib.DEFAULT_NAMES == (
      "mig", "factor_vae", "dci")
  assert study_lib.PRIMARY_METRICS == ("mig", "factor_vae", "dci")
  assert set(study_lib.PRIMARY_METRICS) <= set(
      metrics_lib.labels(study_lib.METRICS))


def test_the_rows_that_are_better_when_lower_are_the_unsupervised_scores():
  lower = {row.label for record in RECORDS for row in record.rows
           if metrics_lib.lower_is_better(row.label)}
  assert lower == set(metrics_lib.labels(["unsupervised"]))
  assert not metrics_lib.lower_is_better("no_such_row")
  assert metrics_lib.display_name("no_such_row") == "no_such_row"


def test_the_metrics_that_fix_a_factor_are_dlibs_two_batch_scores():
  # beta_vae.py and factor_vae.py overwrite one sampled factor per batch.
  assert {r.name for r in RECORDS if r.fixes_a_factor} == {"beta_vae",
                                                           "factor_vae"}


def test_the_table_refuses_a_name_or_row_label_given_twice():
  mig = metrics_lib.METRICS["mig"]
  again = metrics_lib.Metric("mig_again", mig.rows)
  for records in ((mig, mig), (mig, again),
                  (metrics_lib.Metric("two", mig.rows * 2),)):
    with pytest.raises(ValueError, match="registered twice"):
      metrics_lib._table(records)  # pylint: disable=protected-access


def test_a_study_config_default_is_the_records_config(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text('datasets = ["colored_sprites"]\nmodels = ["vae"]\n'
                  'decoders = ["deconv"]\nseeds = [0]\n'
                  '[metrics]\nnames = ["sap", "irs"]\n')
  run, = study_lib.parse_study(str(spec)).runs
  assert run.metric_configs == tuple(
      (name, os.path.join(REPO, metrics_lib.METRICS[name].config))
      for name in ("sap", "irs"))
