"""Every metric dlib ships, through the study runner, into results and tables."""

import pandas as pd

from evaluation import metrics as metrics_lib
from tests import helpers
from tests.helpers import run_tool


def test_a_study_with_every_dlib_metric_reports_every_row(tmp_path):
  metrics = list(metrics_lib.METRICS)
  spec = tmp_path / "all.toml"
  spec.write_text(helpers.study_toml(name="all_metrics", metrics=metrics))
  out = tmp_path / "out"
  proc = run_tool(["sbd_study", "run", str(spec), "--output", str(out)],
                  check=False, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-3000:]
  frame = pd.read_csv(out / "results" / "results.csv")
  assert list(frame["metric"].unique()) == sorted(
      metrics_lib.labels(metrics))
  measured = frame.dropna(subset=["value"])
  # The tiny downstream configs train on 10 and 100 examples only, and
  # logistic regression's cross-validation cannot fit those on scikit-learn
  # 1.5 (stack_fixes.downstream_small_sizes): NaN, not a failed metric.
  missing = set(frame["metric"]) - set(measured["metric"])
  assert missing == {"downstream_lr_10", "downstream_lr_100",
                     "downstream_lr_1000", "downstream_lr_10000",
                     "downstream_gbt_1000", "downstream_gbt_10000"}
  comparison = pd.read_csv(out / "results" / "comparison.csv")
  assert set(comparison["metric"]) == set(measured["metric"])
  report = (out / "report.md").read_text()
  assert "| dci_completeness |" in report and "| irs |" in report
  # The report says which rows are better when lower, in the table's text
  # and the metric figure's caption.
  assert report.count("Higher is better for every metric except "
                      "`gaussian_total_correlation`") == 2
  # How the colour factors relate to the paper's continuous ones.
  assert "they score the bin indices `hue`, `saturation` and `value`" in report
