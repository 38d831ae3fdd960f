"""Command line of the study runner (installed as `sbd_study`).

  sbd_study run gin_configs/studies/demo.toml --output out/demo [--jobs 2]
  sbd_study run STUDY --output DIR --executor ray [--ray-address HOST:PORT]
  sbd_study run STUDY --output DIR --executor slurm --slurm-partition gpu \
      --slurm-time 240 [--gpus-per-run 0.25] [--cpus-per-run 2]
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

from evaluation import executors
from evaluation.executors import base as executor_base
from evaluation import faults
from evaluation import study as study_lib


def _at_least(minimum, cast=int, what="a whole number"):
  """An argparse type: `cast` of the text, refused below `minimum`."""

  def parse(text):
    try:
      value = cast(text)
    except ValueError:
      value = None
    if value is None or not value >= minimum:  # `not >=` also refuses nan.
      raise argparse.ArgumentTypeError("must be %s >= %s, got %r" % (
          what, minimum, text))
    return value

  return parse


_positive_int = _at_least(1)


def _partition(text):
  if not study_lib.SLURM_PARTITION.match(text):
    raise argparse.ArgumentTypeError(
        "must be a SLURM partition name (letters, digits, '_', '-', '.'; "
        "several separated by commas), got %r" % text)
  return text


def _add_resource_flags(run):
  """The flags that override the study file's [resources] table."""
  run.add_argument("--gpus-per-run", type=_at_least(0, float, "a number"),
                   default=None,
                   help="GPUs per training on Ray/SLURM; a fraction shares a "
                   "GPU (default %g where there are GPUs; evaluations take "
                   "none)" % executor_base.DEFAULT_GPUS_PER_RUN)
  run.add_argument("--cpus-per-run", type=_positive_int, default=None,
                   help="CPUs per training or evaluation task (default %d)"
                   % executor_base.DEFAULT_CPUS_PER_RUN)
  run.add_argument("--retries", type=_at_least(0), default=None,
                   help="retries of a failed task (default %d)" %
                   executor_base.DEFAULT_RETRIES)
  run.add_argument("--slurm-partition", type=_partition, default=None,
                   dest="partition", help="SLURM partition of the jobs")
  run.add_argument("--slurm-time", type=_positive_int, default=None,
                   dest="time_minutes", metavar="MINUTES",
                   help="time limit of a SLURM job (default %d); a job that "
                   "reaches it or is pre-empted is requeued and resumes" %
                   executor_base.DEFAULT_TIME_MINUTES)


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
  run.add_argument("--executor", choices=executors.NAMES, default="local")
  run.add_argument("--jobs", type=_positive_int, default=None,
                   help="trainings at once (default: 1 on this machine, plus "
                   "one evaluation beside them; on Ray or SLURM every task "
                   "is submitted and the cluster's resources decide)")
  run.add_argument("--ray-address", default=None,
                   help="join this Ray cluster (default: start one locally)")
  _add_resource_flags(run)
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
        external = dict(run.external)
        print(run.run_id + ("  (external %s: %s)" % (
            external["kind"], external["source"]) if external else ""))
      print("%d runs" % len(study.runs))
      return 0
    # Imported late: planning needs neither TensorFlow nor matplotlib.
    from evaluation import runner  # pylint: disable=g-import-not-at-top
    output_dir = os.path.abspath(args.output)
    outcomes = None
    if args.command == "run":
      overrides = {key: getattr(args, key) for key in (
          "gpus_per_run", "cpus_per_run", "retries", "partition",
          "time_minutes", "ray_address")}
      outcomes = runner.run_study(study, output_dir, args.executor,
                                  args.jobs, overrides)
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
