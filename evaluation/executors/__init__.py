"""Where a study's tasks run: one line per executor, imported on use.

`EXECUTORS` maps each `sbd_study run --executor` name to its class
("module:Class"); nothing is imported (Ray, submitit) until a name is used,
and an unknown name fails here with the valid ones. The interface they share
is `evaluation.executors.base.Executor`.
"""
from evaluation import study as study_lib
from sbd_plugin import lazy_table

EXECUTORS = lazy_table.LazyTable("Executor", [
    ("local", "evaluation.executors.local:LocalExecutor"),
    ("ray", "evaluation.executors.ray_cluster:RayExecutor"),
    ("slurm", "evaluation.executors.slurm:SlurmExecutor"),
    ("submitit-local", "evaluation.executors.slurm:SubmititLocalExecutor"),
])
NAMES = tuple(EXECUTORS)


def create(name, settings):
  """Returns the executor `name` set up with `settings`.

  Args:
    name: One of NAMES.
    settings: evaluation.executors.base.Settings.

  Raises:
    study_lib.StudyError: for an unknown name (listing the valid ones), or
      an executor that cannot start here (missing package or cluster).
  """
  if name not in EXECUTORS:
    raise study_lib.StudyError("Unknown executor %r: use one of %s." % (
        name, ", ".join(NAMES)))
  return EXECUTORS.load(name)(settings)
