"""Resumable execution of a study's runs: local processes or a Ray cluster.

Every run executes `python -m evaluation.worker <run.json>` in a process of
its own (dlib keeps global gin and graph state). A failing run is logged and
listed; the others go on. Finished runs (a DONE.json that parses) are skipped
when the same study is run again, and interrupted ones resume.

One runner per output folder: the runner holds `<output>/.lock` (freed by the
kernel if it dies). SIGTERM or Ctrl-C stop every worker it started; a SIGKILL
of the runner kills them too (`processes.die_with_parent` in the worker).
"""
import concurrent.futures
import dataclasses
import filecmp
import os
import re
import shutil
import signal
import sys
import threading
from typing import List

import tqdm

from evaluation import layout
from evaluation import processes
from evaluation import study as study_lib
from sbd_plugin import atomic

STUDY_COPY = layout.STUDY_COPY


@dataclasses.dataclass
class Outcome:
  run_id: str
  status: str  # "finished", "skipped" (finished before), "failed"
  error: str = ""


def prepare_output_dir(study, output_dir):
  """Creates the output folder, or checks that it holds this same study.

  Raises:
    study_lib.StudyError: if the path is a file, or the folder holds results
      of a different study or something else.
  """
  copy = layout.study_copy(output_dir)
  if os.path.exists(output_dir) and not os.path.isdir(output_dir):
    raise study_lib.StudyError(
        "--output %s is a file, not a folder: choose a new or empty folder."
        % output_dir)
  if os.path.exists(copy):
    if not filecmp.cmp(copy, study.source, shallow=False):
      raise study_lib.StudyError(
          "%s already holds results of a different study (%s differs from "
          "%s). Use another --output folder, or restore the original study "
          "file to resume it." % (output_dir, copy, study.source))
  elif os.path.isdir(output_dir) and os.listdir(output_dir):
    raise study_lib.StudyError(
        "%s exists and is not a study folder; choose an empty or new --output "
        "folder." % output_dir)
  else:
    try:
      os.makedirs(output_dir, exist_ok=True)
      with atomic.atomic_path(copy) as tmp:
        shutil.copyfile(study.source, tmp)
    except OSError as e:
      raise study_lib.StudyError("Cannot create the study folder %s: %s." % (
          output_dir, e.strerror or e)) from None


def lock_output_dir(output_dir):
  """Takes the study folder's lock, or explains who holds it."""
  try:
    return processes.FolderLock(output_dir).acquire("sbd_study run")
  except processes.LockedError as e:
    raise study_lib.StudyError(
        "%s is in use by another runner: %s. Wait for it to finish or stop "
        "it (a killed runner frees the folder at once)." % (output_dir, e)
    ) from None


def worker_command(output_dir, run):
  """Writes the run's spec and returns the command that executes it."""
  directory = study_lib.run_dir(output_dir, run)
  os.makedirs(directory, exist_ok=True)
  spec = layout.run_spec(directory)
  atomic.write_text(spec, run.to_json())
  return [sys.executable, "-m", "evaluation.worker", spec]


def worker_env():
  """The environment of a worker: the repository importable from anywhere."""
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
      [study_lib.REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p])
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


_CHILDREN = processes.Children()


def run_local(command, log_path, children=_CHILDREN):
  """Runs one worker command on this machine; returns its exit code."""
  with open(log_path, "a") as log:
    return children.run(command, log, worker_env())


def _error_excerpt(output_dir, run):
  directory = study_lib.run_dir(output_dir, run)
  for path in (layout.error_path(directory), layout.worker_log(directory)):
    if os.path.exists(path):
      with open(path, errors="replace") as f:
        lines = [l.rstrip() for l in f if l.strip()]
      errors = [l for l in lines if re.match(r"^[\w.]+(Error|Exception)", l)]
      if errors or lines:
        return (errors or lines)[-1][:300]
  return "worker exited without output"


def _ray_submitter(ray_address, gpus_per_run, cpus_per_run):
  """Returns a function submitting a worker command as a Ray task."""
  try:
    import ray  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise study_lib.StudyError(
        "The Ray executor needs Ray: pip install -r requirements/ray.txt") from e
  if not ray.is_initialized():
    ray.init(address=ray_address, log_to_driver=False,
             include_dashboard=False, runtime_env={
                 "env_vars": {"PYTHONPATH": study_lib.REPO_ROOT}})
  if gpus_per_run is None:
    gpus_per_run = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0

  @ray.remote(num_gpus=gpus_per_run, num_cpus=cpus_per_run, max_retries=0)
  def remote_run(command, log_path):
    return run_local(command, log_path)

  return lambda command, log_path: ray.get(remote_run.remote(command,
                                                              log_path))


def _stop_on_signals(children):
  """On SIGTERM or SIGINT: stop every worker, then leave with 128 + signal."""
  if threading.current_thread() is not threading.main_thread():
    return

  def handler(signum, unused_frame):
    children.terminate_all()
    os._exit(128 + signum)  # pylint: disable=protected-access

  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, handler)


def run_study(study, output_dir, executor="local", jobs=None, ray_address=None,
              gpus_per_run=None, progress=True):
  """Executes every unfinished run of `study`.

  Args:
    study: evaluation.study.Study.
    output_dir: Study output folder (created, or resumed if it holds the
      same study), relative to the working directory or absolute. Must be
      on a filesystem shared by all Ray nodes.
    executor: "local" (processes on this machine) or "ray".
    jobs: Number of runs executing at once; None: 1 for "local", all
      pending runs for "ray" (Ray queues them by the cluster's resources).
    ray_address: Address of an existing Ray cluster (None: start locally).
    gpus_per_run: GPUs per Ray task; default 1 if the cluster has GPUs.
    progress: Show a progress bar.

  Returns:
    List of Outcome, in the study's run order.

  Raises:
    study_lib.StudyError: bad output folder, or one in use by another runner.
  """
  output_dir = os.path.abspath(output_dir)
  prepare_output_dir(study, output_dir)
  lock = lock_output_dir(output_dir)
  try:
    return _run_all(study, output_dir, executor, jobs, ray_address,
                    gpus_per_run, progress)
  finally:
    lock.release()


def _run_all(study, output_dir, executor, jobs, ray_address, gpus_per_run,
             progress):
  """run_study's body, while the folder is locked."""
  if executor == "local":
    submit = run_local
  elif executor == "ray":
    submit = _ray_submitter(ray_address, gpus_per_run, 1)
  else:
    raise study_lib.StudyError("Unknown executor %r: use 'local' or 'ray'." %
                               executor)
  _stop_on_signals(_CHILDREN)
  outcomes = {}
  pending = []
  for run in study.runs:
    if study_lib.is_finished(output_dir, run):
      outcomes[run.run_id] = Outcome(run.run_id, "skipped")
    else:
      pending.append(run)
  bar = tqdm.tqdm(total=len(study.runs), initial=len(outcomes), unit="run",
                  desc=study.name, disable=not progress, dynamic_ncols=True)
  failed = 0

  def execute(run):
    command = worker_command(output_dir, run)
    log_path = layout.worker_log(study_lib.run_dir(output_dir, run))
    return submit(command, log_path)

  if jobs is None:
    jobs = len(pending) if executor == "ray" else 1
  with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
    futures = {pool.submit(execute, run): run for run in pending}
    for future in concurrent.futures.as_completed(futures):
      run = futures[future]
      try:
        code = future.result()
        error = "" if code == 0 else _error_excerpt(output_dir, run)
      except Exception as e:  # pylint: disable=broad-except
        code, error = -1, "%s: %s" % (type(e).__name__, e)
      if code == 0 and study_lib.is_finished(output_dir, run):
        outcomes[run.run_id] = Outcome(run.run_id, "finished")
      else:
        failed += 1
        outcomes[run.run_id] = Outcome(run.run_id, "failed",
                                       error or "no DONE.json written")
      bar.set_postfix(failed=failed)
      bar.update(1)
  bar.close()
  return [outcomes[run.run_id] for run in study.runs]


def summarize(outcomes: List[Outcome]):
  """Returns a short human-readable summary of a study execution."""
  counts = {s: sum(o.status == s for o in outcomes)
            for s in ("finished", "skipped", "failed")}
  lines = ["%d runs: %d finished now, %d finished earlier, %d failed." % (
      len(outcomes), counts["finished"], counts["skipped"], counts["failed"])]
  for o in outcomes:
    if o.status == "failed":
      lines.append("  FAILED %s: %s" % (o.run_id, o.error))
  return "\n".join(lines)
