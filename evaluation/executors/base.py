"""What the study runner asks of an executor, and what every executor shares.

The runner (`evaluation.runner`) splits each run into two tasks, `train` (the
GPU part) and `evaluate` (postprocessing and every metric, on CPUs), each one
`python -m evaluation.worker --phase <phase> <run.json>` in a process of its
own. It decides which tasks are ready and how many run at once; an executor
only starts tasks and reports those that ended:

  executor.submit([task, ...])      start (or queue) these tasks
  executor.wait(timeout_seconds)    -> [(task, error or None), ...] ended
  executor.stop()                   stop every task it started (SIGTERM)
  executor.close()                  release the cluster after a normal end

A worker's steps are idempotent (training resumes from its checkpoint,
finished steps are skipped), so a task can be retried or requeued at will.
"""
import dataclasses
import os
import signal
import time
from typing import Optional, Tuple, Union

from evaluation import processes
from evaluation import study as study_lib
from evaluation import worker
from sbd_plugin import portable

PHASES = ("train", "evaluate")
# Trainings share a GPU. A batch-16 Spatial Broadcast training step is ~34
# GFLOP (encoder + decoder forward x3 x16, evaluation.benchmark.flops): ~1.7
# ms of an H100 at an assumed ~30% of its FP32 peak, beside ~1.5 ms of dlib's
# TF1 session and hook work (measured on CPU) and kernel launches while the
# GPU waits: one run keeps it busy about 30-60% of a step. Four per GPU
# overlap that host work, for ~2.4x the throughput of one run per GPU, and
# their tensors need well under 1 GB of 80 (docs/gpu_time.md). The worker
# sets TF_FORCE_GPU_ALLOW_GROWTH: each takes what it uses.
DEFAULT_GPUS_PER_RUN = 0.25
DEFAULT_CPUS_PER_RUN = 1
DEFAULT_RETRIES = 1
DEFAULT_TIME_MINUTES = 24 * 60


@dataclasses.dataclass(frozen=True)
class Settings:
  """How tasks are run: the study file's [resources], overridden by flags.

  Attributes:
    output_dir: The study folder (absolute; shared by all nodes).
    gpus_per_run: GPUs per training task; None: the executor's default
      (DEFAULT_GPUS_PER_RUN where GPUs exist). Evaluation tasks take none.
    cpus_per_run: CPUs per training and per evaluation task.
    retries: How often a failed task is tried again.
    partition: SLURM partition (None: the cluster's default).
    time_minutes: Time limit of a SLURM job; one that reaches it is requeued
      and resumes.
    ray_address: Ray cluster to join (None: start one on this machine).
    account, qos, mem, constraint: sbatch's options of those names (None:
      not given; checked by evaluation.slurm_options).
    setup: Shell lines each SLURM job runs before its tasks.
    sbatch: Other sbatch options, (name, value) pairs; a list or dict is
      turned into them.
    portable: Run every worker in portable mode (sbd_plugin.portable); also
      on when the runner itself runs with SBD_PORTABLE=1.
  """
  output_dir: str
  gpus_per_run: Optional[float] = None
  cpus_per_run: int = DEFAULT_CPUS_PER_RUN
  retries: int = DEFAULT_RETRIES
  partition: Optional[str] = None
  time_minutes: int = DEFAULT_TIME_MINUTES
  ray_address: Optional[str] = None
  account: Optional[str] = None
  qos: Optional[str] = None
  mem: Optional[str] = None
  constraint: Optional[str] = None
  setup: Tuple[str, ...] = ()
  sbatch: Tuple[Tuple[str, Union[str, int, bool]], ...] = ()
  portable: bool = False

  def __post_init__(self):
    # The study file gives a list and a table; keep the record hashable.
    object.__setattr__(self, "setup", tuple(self.setup))
    sbatch = self.sbatch
    object.__setattr__(self, "sbatch", tuple(sorted(
        (sbatch.items() if isinstance(sbatch, dict) else sbatch))))


@dataclasses.dataclass(frozen=True)
class Task:
  """One phase of one run: a worker command and the log it appends to."""
  run_id: str
  phase: str  # One of PHASES.
  command: Tuple[str, ...]
  log_path: str
  # Variables the worker's environment gets on top of worker_env()'s, e.g.
  # portable mode's (set before the worker's Python starts).
  env: Tuple[Tuple[str, str], ...] = ()


class Executor(object):
  """The interface every executor implements (see the module docstring)."""

  # True if the executor retries failed tasks itself (Ray); else the runner
  # submits them again.
  retries_tasks = False
  # True if a cluster queues tasks by their resources: the runner then submits
  # every ready task at once instead of keeping --jobs of them running.
  queues = False

  def __init__(self, settings):
    self.settings = settings

  def submit(self, tasks):
    """Starts (or queues) `tasks`, a list of Task."""
    raise NotImplementedError

  def wait(self, timeout):
    """Waits up to `timeout` seconds for tasks to end.

    Returns:
      List of (Task, error): error is None for a task whose worker exited 0,
      else a short text. Each task is reported once.
    """
    raise NotImplementedError

  def stop(self):
    """Stops every task this executor started, and what they started."""
    raise NotImplementedError

  def close(self):
    """Releases what the executor holds once all tasks ended."""


def worker_env(extra=()):
  """The environment of a worker: the repository importable from anywhere.

  Args:
    extra: (name, value) pairs set on top (a Task's `env`).
  """
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [study_lib.REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  env.update(dict(extra))
  return env


def task_env(settings):
  """The Task `env` of a study's workers: portable mode's variables, if on,
  and a relative $SBD_PLUGIN_CACHE made absolute (Ray and SLURM workers may
  start in another folder than the runner, and would build a second cache).
  """
  env = {}
  cache = os.environ.get("SBD_PLUGIN_CACHE")
  if cache and not os.path.isabs(cache):
    env["SBD_PLUGIN_CACHE"] = os.path.abspath(cache)
  if settings.portable:
    env.update(portable.environment(os.environ))
  return tuple(sorted(env.items()))


# In the error text of a worker that exited with worker.CANNOT_RETRY_EXIT.
CANNOT_RETRY = "an error a retry cannot change"


def cannot_retry(error):
  """True if the error text of a task says retrying it is pointless."""
  return CANNOT_RETRY in (error or "")


def exit_error(code):
  """The error text of a worker exit code (None for success)."""
  if code == 0:
    return None
  if code == worker.CANNOT_RETRY_EXIT:
    return "worker stopped on %s (exit status %d)" % (CANNOT_RETRY, code)
  if code < 0:
    return "worker killed by %s" % signal.Signals(-code).name
  return "worker exited with status %d" % code


def run_tasks(tasks, poll_seconds=0.5):
  """Runs the worker commands of `tasks` at once, here, until all ended.

  For executors whose unit of work is a process of their own (a Ray task, a
  submitit job). If this process is interrupted (SIGINT, the SystemExit of
  a requeue), the workers are stopped first.

  Args:
    tasks: List of Task.
    poll_seconds: Interval between checks.

  Returns:
    List of exit codes, one per task (negative: killed by that signal).
  """
  children = processes.Children()
  procs = []
  try:
    for task in tasks:
      with open(task.log_path, "a") as log:
        procs.append(children.start(list(task.command), log,
                                    worker_env(task.env)))
    codes = [None] * len(procs)
    while None in codes:
      time.sleep(poll_seconds)
      codes = [c if c is not None else children.poll(p)
               for c, p in zip(codes, procs)]
    return codes
  finally:
    children.terminate_all()
