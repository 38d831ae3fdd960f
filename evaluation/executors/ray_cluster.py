"""Tasks as Ray tasks: the cluster places them by the resources they ask for.

A training task asks for `gpus_per_run` GPUs (a fraction: several trainings
share a GPU; default `base.DEFAULT_GPUS_PER_RUN` when the cluster has GPUs)
and `cpus_per_run` CPUs; an evaluation task for the CPUs only. Ray retries a
failed task `retries` times (`max_retries` for a lost worker or node,
`retry_exceptions` for a worker that exited non-zero). The driver submits
every ready task and waits on the object refs with `ray.wait`.
"""
from evaluation import study as study_lib
from evaluation.executors import base


class WorkerFailed(RuntimeError):
  """A worker exited non-zero (raised inside the Ray task, so Ray retries)."""


class WorkerCannotRetry(RuntimeError):
  """A worker failed on an error a retry cannot change: Ray does not retry."""


def _run_task(task):
  """The body of a Ray task: one worker process on the node."""
  error = base.exit_error(base.run_tasks([task])[0])
  if error:
    failed = WorkerCannotRetry if base.cannot_retry(error) else WorkerFailed
    raise failed("%s (%s of %s)" % (error, task.phase, task.run_id))
  return 0


def _ray():
  try:
    import ray  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise study_lib.StudyError(
        "The Ray executor needs Ray: pip install -r requirements/ray.txt"
    ) from e
  return ray


class RayExecutor(base.Executor):
  """Submits tasks to a Ray cluster (an existing one, or one started here)."""

  retries_tasks = True
  queues = True

  def __init__(self, settings):
    super(RayExecutor, self).__init__(settings)
    ray = self._ray = _ray()
    self._started_cluster = settings.ray_address is None
    if not ray.is_initialized():
      ray.init(address=settings.ray_address, log_to_driver=False,
               include_dashboard=False, runtime_env={
                   "env_vars": {"PYTHONPATH": study_lib.REPO_ROOT}})
    gpus = settings.gpus_per_run
    if gpus is None:
      has_gpus = ray.cluster_resources().get("GPU", 0) > 0
      gpus = base.DEFAULT_GPUS_PER_RUN if has_gpus else 0
    options = dict(num_cpus=settings.cpus_per_run,
                   max_retries=settings.retries,
                   retry_exceptions=[WorkerFailed])
    self._remote = {
        "train": ray.remote(num_gpus=gpus, **options)(_run_task),
        "evaluate": ray.remote(num_gpus=0, **options)(_run_task),
    }
    self._refs = {}  # ray.ObjectRef -> Task

  def submit(self, tasks):
    for task in tasks:
      self._refs[self._remote[task.phase].remote(task)] = task

  def wait(self, timeout):
    if not self._refs:
      return []
    refs = list(self._refs)
    ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
    if ready:  # Collect every other task that ended meanwhile.
      ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
    return [(self._refs.pop(ref), self._error(ref)) for ref in ready]

  def _error(self, ref):
    try:
      self._ray.get(ref)
      return None
    except Exception as e:  # pylint: disable=broad-except
      cause = getattr(e, "cause", None) or e
      return "%s: %s" % (type(cause).__name__, cause)

  def stop(self):
    # Killing a Ray worker kills its worker process (die_with_parent).
    for ref in self._refs:
      self._ray.cancel(ref, force=True)
    self.close()

  def close(self):
    if self._started_cluster:
      self._ray.shutdown()
