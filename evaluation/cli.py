"""Command line of the study runner (installed as `sbd_study`).

  sbd_study run gin_configs/studies/demo.toml --output out/demo [--jobs 2]
  sbd_study run STUDY --output DIR --executor ray [--ray-address HOST:PORT]
  sbd_study report STUDY --output DIR      # rebuild tables, figures, report
  sbd_study plan STUDY                     # list the runs without running

Re-running `run` on the same output folder resumes: finished runs are
skipped, unfinished ones continue where they stopped. Paths are relative to
the working directory.
"""
import argparse
import errno
import os
import sys

from evaluation import faults
from evaluation import study as study_lib


def _positive_int(text):
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError("must be a whole number >= 1, got %r"
                                     % text)
  return value


def _report(study, output_dir, outcomes):
  """Rebuilds the report while holding the folder (no runner writes it)."""
  from evaluation import report  # pylint: disable=g-import-not-at-top
  from evaluation import runner  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(os.path.join(output_dir, runner.STUDY_COPY)):
    raise study_lib.StudyError(
        "%s holds no study (no %s): run the study first." % (
            output_dir, runner.STUDY_COPY))
  lock = runner.lock_output_dir(output_dir)
  try:
    faults.point("report")
    return report.build_report(study, output_dir, outcomes)
  finally:
    lock.release()


def _parser():
  parser = argparse.ArgumentParser(
      prog="sbd_study", description="Spatial Broadcast comparison studies "
      "with disentanglement_lib.",
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  sub = parser.add_subparsers(dest="command", required=True)
  run = sub.add_parser("run", help="run (or resume) a study, then report")
  run.add_argument("study", help="study TOML file")
  run.add_argument("--output", required=True, help="study output folder")
  run.add_argument("--executor", choices=("local", "ray"), default="local")
  run.add_argument("--jobs", type=_positive_int, default=None,
                   help="runs executing at once (default: 1 local process; "
                   "with Ray every run is submitted and the cluster's "
                   "resources decide)")
  run.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (default: start one locally)")
  run.add_argument("--gpus-per-run", type=float, default=None,
                   help="Ray: GPUs per run (default: 1 if the cluster has "
                   "GPUs, else 0)")
  run.add_argument("--no-report", action="store_true")
  report = sub.add_parser("report", help="rebuild the report of a study")
  report.add_argument("study")
  report.add_argument("--output", required=True)
  plan = sub.add_parser("plan", help="list the planned runs")
  plan.add_argument("study")
  return parser


def main(argv=None):
  args = _parser().parse_args(argv)
  try:
    study = study_lib.parse_study(args.study)
    if args.command == "plan":
      for run in study.runs:
        print(run.run_id)
      print("%d runs" % len(study.runs))
      return 0
    # Imported late: planning needs neither TensorFlow nor matplotlib.
    from evaluation import runner  # pylint: disable=g-import-not-at-top
    output_dir = os.path.abspath(args.output)
    outcomes = None
    if args.command == "run":
      outcomes = runner.run_study(study, output_dir, args.executor,
                                  args.jobs, args.ray_address,
                                  args.gpus_per_run)
      print(runner.summarize(outcomes))
      if args.no_report:
        return 1 if any(o.status == "failed" for o in outcomes) else 0
    path = _report(study, output_dir, outcomes)
    print("Report: %s" % path)
    failed = outcomes and any(o.status == "failed" for o in outcomes)
    return 1 if failed else 0
  except study_lib.StudyError as e:
    print("sbd_study: error: %s" % e, file=sys.stderr)
    return 2
  except OSError as e:
    if e.errno != errno.ENOSPC:
      raise
    print("sbd_study: error: the disk is full (writing %s). Free some space "
          "and run the same command again: finished runs and checkpoints are "
          "kept." % (e.filename or args.output), file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
