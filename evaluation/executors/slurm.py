"""Tasks as SLURM jobs through submitit, or submitit's local jobs.

Every call of `submit` becomes one job array per phase (`executor.batch()`):
at the start of a study, every training in one array. Training jobs ask for
`gpus_per_run` GPUs; SLURM allocates whole GPUs, so with a fraction several
trainings share one job and its GPU (0.25: four per job). Evaluation jobs ask
for CPUs only. A job pre-empted or reaching `time_minutes` is requeued by
submitit (`WorkerJob.checkpoint`) and resumes where it stopped: training
from its newest checkpoint, finished steps skipped. Job files and logs go to
`<output>/slurm/` (`<job id>_0_log.out`; a worker's own output goes to its
run's worker.log).

`submitit-local` runs the same jobs as processes of this machine (submitit's
LocalExecutor), for trying a study's cluster set-up without a cluster.
"""
import math
import os
import re
import shutil
import time

from evaluation import layout
from evaluation import processes
from evaluation import study as study_lib
from evaluation.executors import base

# Times a job may reach its time limit and be requeued; each time it resumes
# from its newest checkpoint, so it gets further.
MAX_TIMEOUTS = 20
# Seconds given to submitit's local jobs to stop their workers when cancelled.
STOP_SECONDS = 15.0


def pack_size(phase, gpus_per_run):
  """How many tasks of `phase` share one job: trainings sharing a GPU."""
  if phase == "train" and 0 < gpus_per_run < 1:
    return int(math.floor(1 / gpus_per_run + 1e-9))
  return 1


def job_gpus(phase, gpus_per_run):
  """Whole GPUs one job of `phase` asks for."""
  if phase != "train":
    return 0
  return int(math.ceil(gpus_per_run * pack_size(phase, gpus_per_run) - 1e-9))


def job_name(output_dir, phase):
  """'sbd-<study folder>-<phase>': what squeue shows, scancel --name takes.

  The folder's name goes into the job script's #SBATCH lines: anything but
  letters, digits, '_', '.' and '-' (a line break would start a command) is
  replaced by '_'.
  """
  folder = os.path.basename(output_dir.rstrip(os.sep))
  return "sbd-%s-%s" % (re.sub(r"[^A-Za-z0-9_.\-]", "_", folder), phase)


class WorkerJob(object):
  """One submitit job: its tasks' workers at once; requeued, it resumes."""

  def __init__(self, tasks, runner_pid=None):
    """Describes the job.

    Args:
      tasks: List of base.Task.
      runner_pid: For jobs on the runner's machine: the runner, whose death
        ends the job (submitit's controller process sits between them).
    """
    self.tasks = tasks
    self.runner_pid = runner_pid

  def __call__(self):
    if self.runner_pid is not None:
      processes.die_with_parent()
      processes.exit_when_gone(self.runner_pid)
    return base.run_tasks(self.tasks)

  def checkpoint(self, *unused_args, **unused_kwargs):
    """Called by submitit on pre-emption or time-out: requeue this job."""
    import submitit  # pylint: disable=g-import-not-at-top
    # The workers keep their own state (checkpoints, finished steps).
    return submitit.helpers.DelayedSubmission(self)


def _submitit():
  try:
    import submitit  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise study_lib.StudyError(
        "The SLURM executors need submitit: pip install -r "
        "requirements/ray.txt") from e
  return submitit


class SlurmExecutor(base.Executor):
  """Submits tasks as SLURM job arrays."""

  cluster = "slurm"
  queues = True
  default_gpus_per_run = base.DEFAULT_GPUS_PER_RUN

  def __init__(self, settings):
    super(SlurmExecutor, self).__init__(settings)
    submitit = _submitit()
    self._check_cluster()
    self.gpus_per_run = (self.default_gpus_per_run
                         if settings.gpus_per_run is None
                         else settings.gpus_per_run)
    self._executors = {phase: self._executor(submitit, phase)
                       for phase in base.PHASES}
    self._jobs = {}  # submitit Job -> list of Task

  def _check_cluster(self):
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
      raise study_lib.StudyError(
          "--executor slurm needs SLURM's sbatch and srun on the PATH: run "
          "the study from a login node. On one machine use --executor "
          "submitit-local.")

  def _executor(self, submitit, phase):
    """A submitit executor whose jobs ask for what one job of `phase` needs."""
    s = self.settings
    executor = submitit.AutoExecutor(
        folder=layout.slurm_dir(s.output_dir),
        cluster=self.cluster, slurm_max_num_timeout=MAX_TIMEOUTS,
        local_max_num_timeout=MAX_TIMEOUTS)
    executor.update_parameters(
        name=job_name(s.output_dir, phase), timeout_min=s.time_minutes,
        # None, not 0: no GPU line in the sbatch file.
        gpus_per_node=job_gpus(phase, self.gpus_per_run) or None,
        cpus_per_task=s.cpus_per_run * pack_size(phase, self.gpus_per_run),
        stderr_to_stdout=True, slurm_partition=s.partition)
    # The study's extra sbatch options; only those given (submitit writes
    # every parameter it is handed).
    extra = dict(slurm_account=s.account, slurm_qos=s.qos, slurm_mem=s.mem,
                 slurm_constraint=s.constraint,
                 slurm_setup=list(s.setup) or None,
                 slurm_additional_parameters=dict(s.sbatch) or None)
    executor.update_parameters(
        **{k: v for k, v in extra.items() if v is not None})
    return executor

  def _runner_pid(self):
    return None

  def submit(self, tasks):
    for phase in base.PHASES:
      mine = [t for t in tasks if t.phase == phase]
      size = pack_size(phase, self.gpus_per_run)
      packs = [mine[i:i + size] for i in range(0, len(mine), size)]
      if not packs:
        continue
      jobs = self._submit_array(self._executors[phase], packs)
      self._jobs.update(zip(jobs, packs))

  def _submit_array(self, executor, packs):
    """One job array, a job per pack of tasks; says why sbatch refused it."""
    submitit = _submitit()
    try:
      with executor.batch():
        return [executor.submit(WorkerJob(pack, self._runner_pid()))
                for pack in packs]
    except submitit.core.utils.FailedJobError as e:
      raise study_lib.StudyError("Submitting %d job(s) failed: %s" % (
          len(packs), str(e).strip() or type(e).__name__)) from None

  def wait(self, timeout):
    deadline = time.time() + timeout
    while True:
      ended = []
      for job in [j for j in self._jobs if j.done()]:
        ended += self._results(job, self._jobs.pop(job))
      if ended or time.time() >= deadline:
        return ended
      time.sleep(0.5)

  @staticmethod
  def _results(job, tasks):
    """(task, error) for each task of an ended job."""
    try:
      codes = job.result()
    except Exception as e:  # pylint: disable=broad-except
      lines = str(e).strip().splitlines() or [""]
      error = "%s: %s (job %s)" % (type(e).__name__, lines[0], job.job_id)
      return [(task, error) for task in tasks]
    return [(task, base.exit_error(code)) for task, code in zip(tasks, codes)]

  def stop(self):
    for job in self._jobs:
      job.cancel(check=False)


class SubmititLocalExecutor(SlurmExecutor):
  """The same jobs, as submitit's local processes on this machine."""

  cluster = "local"
  queues = False  # Every submitted job starts at once: the runner throttles.
  default_gpus_per_run = 0

  def _check_cluster(self):
    pass

  def _runner_pid(self):
    return os.getpid()

  def stop(self):
    # Cancelling sends SIGINT to a job's controller, which stops the job; wait
    # for them, so that nothing is left when the runner exits.
    super(SubmititLocalExecutor, self).stop()
    deadline = time.time() + STOP_SECONDS
    while time.time() < deadline and not all(j.done() for j in self._jobs):
      time.sleep(0.1)
