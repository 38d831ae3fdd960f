"""Command line of the study runner (installed as `sbd_study`).

  sbd_study run gin_configs/studies/demo.toml --output out/demo [--jobs 2]
  sbd_study run STUDY --output DIR --executor ray [--ray-address HOST:PORT]
  sbd_study run STUDY --output DIR --executor slurm --slurm-partition gpu \
      --slurm-time 240 [--gpus-per-run 0.25] [--cpus-per-run 2] \
      [--slurm-account A] [--slurm-qos Q] [--slurm-mem 32G] \
      [--slurm-constraint 'a100|h100'] [--slurm-setup 'module load cuda'] \
      [--slurm-option reservation=paper]
  sbd_study report STUDY --output DIR      # rebuild tables, figures, report
  sbd_study plan STUDY                     # check the study, list its runs

`plan` and `run` first check every dataset name, config file, gin binding
and metric of the study (in a child process that loads dlib, ~10-30 s) and
list every problem before anything runs.

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
from evaluation import layout
from evaluation import runner
from evaluation import slurm_options
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


def _checked(check):
  """An argparse type from an evaluation.slurm_options check."""

  def parse(text):
    problem = check(text)
    if problem:
      raise argparse.ArgumentTypeError("%s, got %r" % (problem, text))
    return text

  return parse


def _sbatch_option(text):
  try:
    return slurm_options.parse_option(text)
  except ValueError as e:
    raise argparse.ArgumentTypeError(
        "%s (write NAME=VALUE, or NAME alone for a flag)" % e) from None


# The argparse type of each [resources] type check (study_lib.RESOURCES).
_FLAG_TYPES = {
    "partition": _checked(slurm_options.check_partition),
    "positive_int": _positive_int, "non_negative_int": _at_least(0),
    "non_negative_number": _at_least(0, float, "a number"),
    "slurm_name": _checked(slurm_options.check_name),
    "slurm_mem": _checked(slurm_options.check_mem),
    "slurm_constraint": _checked(slurm_options.check_constraint),
    "shell_lines": _checked(slurm_options.check_line),
    "sbatch_options": _sbatch_option}
# Checks whose flag may be repeated, one item each.
_REPEATED = ("shell_lines", "sbatch_options")
# What --help says of a resource flag beyond the study file's description.
_FLAG_HELP = {
    "gpus_per_run": "GPUs per training on Ray/SLURM; a fraction shares a "
                    "GPU (default %g where there are GPUs; evaluations take "
                    "none)" % executor_base.DEFAULT_GPUS_PER_RUN,
    "cpus_per_run": "CPUs per training or evaluation task (default %d)"
                    % executor_base.DEFAULT_CPUS_PER_RUN,
    "retries": "retries of a failed task (default %d)" %
               executor_base.DEFAULT_RETRIES,
    "partition": "SLURM partition of the jobs",
    "time_minutes": "time limit of a SLURM job (default %d); a job that "
                    "reaches it or is pre-empted is requeued and resumes" %
                    executor_base.DEFAULT_TIME_MINUTES,
    "account": "SLURM account of the jobs (sbatch --account)",
    "qos": "SLURM quality of service (sbatch --qos)",
    "mem": "memory of each SLURM job, e.g. 32G (sbatch --mem)",
    "constraint": "node features, e.g. 'a100|h100' (sbatch --constraint)",
    "setup": "a shell line each SLURM job runs before its tasks (repeat for "
             "several; replaces the study's `setup`)",
    "sbatch": "any other sbatch option, e.g. reservation=paper (repeat for "
              "several; added to the study's `sbatch`)",
    "portable": "portable mode: pin numpy's, OpenBLAS's, oneDNN's and "
                "libm's CPU dispatch and every thread count, for the same "
                "bytes on any x86-64 CPU with AVX, slower (overrides the "
                "study's `portable`; SBD_PORTABLE=1 turns it on too)",
}
_FLAG_METAVARS = {"time_minutes": "MINUTES", "mem": "MEM", "setup": "LINE",
                  "sbatch": "NAME=VALUE"}


def _add_resource_flags(run):
  """The flags that override the study file's [resources] table."""
  for key, (check, description, flag) in study_lib.RESOURCES.items():
    if check == "bool":  # --portable / --no-portable
      run.add_argument(flag, action=argparse.BooleanOptionalAction,
                       default=None, dest=key,
                       help=_FLAG_HELP.get(key, description))
      continue
    run.add_argument(flag, type=_FLAG_TYPES[check], default=None, dest=key,
                     metavar=_FLAG_METAVARS.get(key),
                     action="append" if check in _REPEATED else "store",
                     help=_FLAG_HELP.get(key, description))


def _report(study, output_dir, outcomes):
  """Rebuilds the report while holding the folder (no runner writes it)."""
  # Imported here: the report loads matplotlib and dlib, which planning and
  # running a study do not need.
  from evaluation import report  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(layout.study_copy(output_dir)):
    raise study_lib.StudyError(
        "%s holds no study (no %s): run the study first." % (
            output_dir, layout.STUDY_COPY))
  # Rows are matched to runs by id, and studies share ids: another study's
  # file would report these numbers under its name.
  runner.check_same_study(study, output_dir)
  lock = runner.lock_output_dir(output_dir, "sbd_study report")
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
    if args.command in ("plan", "run"):
      # Every dataset name, config, binding and metric, before any worker.
      from evaluation import preflight  # pylint: disable=g-import-not-at-top
      study = preflight.check(args.study)
    else:
      study = study_lib.parse_study(args.study)
    if args.command == "plan":
      for run in study.runs:
        external = dict(run.external)
        print(run.run_id + ("  (external %s: %s)" % (
            external["kind"], external["source"]) if external else ""))
      print("%d runs" % len(study.runs))
      return 0
    output_dir = os.path.abspath(args.output)
    outcomes = None
    if args.command == "run":
      overrides = {key: getattr(args, key) for key in
                   list(study_lib.RESOURCES) + ["ray_address"]}
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
    if e.errno == errno.ENOSPC:
      print("sbd_study: error: the disk is full (writing %s). Free some space "
            "and run the same command again: finished runs and checkpoints "
            "are kept." % (e.filename or args.output), file=sys.stderr)
      return 2
    if e.filename is None:
      raise
    # E.g. a marker that exists but cannot be read (permissions, NFS): it is
    # reported, never taken for missing work and redone.
    print("sbd_study: error: %s: %s. Once this file can be read and "
          "written again, run the same command: finished runs and "
          "checkpoints are kept." % (e.filename, e.strerror or e),
          file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main())
