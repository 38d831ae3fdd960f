"""The gap over the baseline on one dataset minus another, across two studies.

  python -m evaluation.gaps_cli FIRST.csv DATASET SECOND.csv DATASET \
      [--metric mig ...] [--baseline deconv] [--csv OUT.csv]

Reads two finished studies' results/results.csv (or one file twice) and
prints `endpoints.gap_difference_table` of FIRST's DATASET against SECOND's
DATASET as a Markdown table: per model, beta, metric and decoder, the
decoder's median minus the baseline's on each, and their difference with a
bootstrap percentile interval. For claim (e), e.g. a small-objects study's
`small_colored_sprites` against docs/cpu_evidence/results/results.csv's
`colored_sprites`. Runs are matched by model, beta, metric and decoder;
trained numbers differ across CPU types, so say where each study ran.
"""
import argparse
import sys

from evaluation import endpoints
from evaluation import markdown
from evaluation import study as study_lib
from evaluation import tables


def compare(first_path, first_dataset, second_path, second_dataset,
            baseline=study_lib.BASELINE, metrics=None):
  """The difference-of-gaps table of two results files' datasets.

  Args:
    first_path, second_path: Paths of results.csv files (the same allowed).
    first_dataset, second_dataset: The dataset of each.
    baseline: The decoder the gaps are measured from.
    metrics: Metric labels (default: every metric of either).

  Returns:
    `endpoints.gap_difference_table`'s DataFrame, labelled by dataset
    ("<dataset> (first)", "(second)" when both have the same name).

  Raises:
    StudyError: if a file cannot be read or has no rows of its dataset.
  """
  labels = [first_dataset, second_dataset]
  if first_dataset == second_dataset:
    labels = ["%s (first)" % first_dataset, "%s (second)" % second_dataset]
  first = tables.dataset_rows(first_path, first_dataset)
  second = tables.dataset_rows(second_path, second_dataset)
  known = set(first["metric"]) | set(second["metric"])
  unknown = [m for m in metrics or () if m not in known]
  if unknown:
    raise study_lib.StudyError(
        "Neither file has the metric(s) %s in these rows (they have: %s)." % (
            ", ".join(unknown), ", ".join(sorted(known))))
  return endpoints.gap_difference_table(first, second, baseline, metrics,
                                        labels=labels)


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m evaluation.gaps_cli", description=__doc__.split("\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("first", help="first results.csv")
  parser.add_argument("first_dataset")
  parser.add_argument("second", help="second results.csv")
  parser.add_argument("second_dataset")
  parser.add_argument("--metric", action="append", dest="metrics",
                      help="metric label (repeat; default every metric)")
  parser.add_argument("--baseline", default=study_lib.BASELINE)
  parser.add_argument("--csv", help="also write the table (full precision)")
  args = parser.parse_args(argv)
  try:
    table = compare(args.first, args.first_dataset, args.second,
                    args.second_dataset, args.baseline, args.metrics)
  except study_lib.StudyError as e:
    print("gaps_cli: error: %s" % e, file=sys.stderr)
    return 2
  if not len(table):
    print("gaps_cli: error: no decoder besides %r in these rows." %
          args.baseline, file=sys.stderr)
    return 2
  print("First: `%s` of %s; second: `%s` of %s.\n" % (
      args.first_dataset, args.first, args.second_dataset, args.second))
  print(markdown.frame_to_markdown(endpoints.format_gap_difference(table)),
        end="")
  if args.csv:
    table.to_csv(args.csv, index=False)
  return 0


if __name__ == "__main__":
  sys.exit(main())
