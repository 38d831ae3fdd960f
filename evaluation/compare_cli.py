"""The same runs from two results tables side by side, with a test of equality.

  python -m evaluation.compare_cli FIRST.csv SECOND.csv --dataset DATASET \
      [--labels "TF 2.15" "TF 2.21"] [--metric mig ...] [--csv OUT.csv] \
      [--figure OUT.png]

For two executions of one protocol that should agree in distribution: two
stacks (Python 3.11 / TensorFlow 2.15 against 3.12+ / 2.21), two CPU types,
portable mode on and off. Per model, beta, decoder and metric, SECOND's seeds
are compared with FIRST's as a decoder with its baseline in the study tables
(`tables.comparison_table`): medians, the difference with a bootstrap
interval, P(sup), the exact two-sided Mann-Whitney p and Holm over the
primary metrics' tests. A large p does not show equality; the interval says
how large a difference the seeds leave possible. `--figure` draws every seed
of both side by side per metric (`figures.metric_distributions_figure`).
"""
import argparse
import sys

import pandas as pd

from evaluation import figures
from evaluation import markdown
from evaluation import study as study_lib
from evaluation import tables

DEFAULT_LABELS = ("first", "second")


def side_by_side(first, second, labels=DEFAULT_LABELS, metrics=None):
  """One frame of both tables' rows, each row's table as its "decoder".

  The original decoder joins the model ("vae / broadcast"), so the study
  tables and figures compare the two tables within each decoder.

  Args:
    first, second: Tidy results rows (tables.REQUIRED_COLUMNS).
    labels: The two tables' names.
    metrics: Metric labels kept (default: every metric of either).

  Returns:
    DataFrame with the columns of tables.REQUIRED_COLUMNS.

  Raises:
    StudyError: for equal labels or a metric neither table has.
  """
  if labels[0] == labels[1]:
    raise study_lib.StudyError("The two labels must differ, both are %r." %
                               labels[0])
  frames = []
  for rows, label in zip((first, second), labels):
    rows = rows[list(tables.REQUIRED_COLUMNS)].copy()
    rows["model"] = rows["model"].astype(str) + " / " + rows["decoder"]
    rows["decoder"] = label
    frames.append(rows)
  both = pd.concat(frames, ignore_index=True)
  if metrics:
    unknown = sorted(set(metrics) - set(both["metric"]))
    if unknown:
      raise study_lib.StudyError("Neither table has the metric(s) %s (they "
                                 "have %s)." % (", ".join(unknown), ", ".join(
                                     sorted(both["metric"].unique()))))
    both = both[both["metric"].isin(metrics)]
  return both


def compare(first_path, second_path, dataset, labels=DEFAULT_LABELS,
            metrics=None):
  """The comparison table of `dataset`'s runs in two results files.

  Args:
    first_path, second_path: Paths of results.csv files.
    dataset: The dataset compared (both must have it).
    labels: The two files' names; the first is the baseline.
    metrics: Metric labels (default: every metric of either).

  Returns:
    (tables.comparison_table's DataFrame, the side-by-side rows).

  Raises:
    StudyError: if a file cannot be read or lacks the dataset, or the two
      share no cell.
  """
  both = side_by_side(tables.dataset_rows(first_path, dataset),
                      tables.dataset_rows(second_path, dataset), labels,
                      metrics)
  # dropna=False: an external model's beta is unknown (NaN) in both files.
  cells = both.groupby(["model", "beta", "metric"],
                       dropna=False)["decoder"].nunique()
  if not (cells == 2).any():
    raise study_lib.StudyError(
        "%s and %s share no model, decoder, beta and metric of %r: nothing "
        "to compare." % (first_path, second_path, dataset))
  return tables.comparison_table(both, baseline=labels[0]), both


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m evaluation.compare_cli",
      description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("first", help="first results.csv (the baseline)")
  parser.add_argument("second", help="second results.csv")
  parser.add_argument("--dataset", required=True)
  parser.add_argument("--labels", nargs=2, default=list(DEFAULT_LABELS),
                      metavar=("FIRST", "SECOND"), help="names of the two")
  parser.add_argument("--metric", action="append", dest="metrics",
                      help="metric label (repeat; default every metric)")
  parser.add_argument("--csv", help="also write the table (full precision)")
  parser.add_argument("--figure", help="also draw every seed (PNG)")
  args = parser.parse_args(argv)
  try:
    table, both = compare(args.first, args.second, args.dataset,
                          tuple(args.labels), args.metrics)
  except study_lib.StudyError as e:
    print("compare_cli: error: %s" % e, file=sys.stderr)
    return 2
  print("`%s` of %s (%s) against %s (%s), within each model / decoder.\n" % (
      args.dataset, args.second, args.labels[1], args.first, args.labels[0]))
  print(markdown.frame_to_markdown(tables.format_table(table)), end="")
  if args.csv:
    table.to_csv(args.csv, index=False)
  if args.figure:
    figures.plot_metric_distributions(both, args.figure,
                                      baseline=args.labels[0])
  return 0


if __name__ == "__main__":
  sys.exit(main())
