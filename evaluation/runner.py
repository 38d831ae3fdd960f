"""Resumable execution of a study's runs, on this machine or a cluster.

Each run is two tasks, `train` then `evaluate` (postprocessing and metrics),
each `python -m evaluation.worker --phase <phase> <run.json>` in a process
of its own (dlib keeps global gin and graph state), started by an executor
(`evaluation.executors`: local processes, Ray, SLURM through submitit). The
runner pipelines them (`Pipeline`): a run's evaluation starts when its
training ended and overlaps later trainings. A failed task is tried again
`retries` times, unless its worker says the error cannot change on a retry
(`worker.CANNOT_RETRY_EXIT`: a configuration, gin or value error); a run
still failing is listed with its error's line and the path of its full
error.log, and the others go on.
Finished runs (a DONE.json that parses) are skipped when the same study is
run again, and interrupted ones resume. While it waits, the runner shows the
step, steps/s and ETA of every running training (`model/progress.json`).

One runner per output folder: the runner holds `<output>/.lock` (freed by the
kernel if it dies). SIGTERM or Ctrl-C stop every task it started, on every
executor; a SIGKILL of the runner kills its local workers too
(`processes.die_with_parent`, `processes.exit_when_gone`).
"""
import collections
import dataclasses
import os
import re
import signal
import sys
import threading
import time
from typing import Dict, List

import tqdm

from evaluation import executors
from evaluation import layout
from evaluation import markdown
from evaluation import processes
from evaluation import study as study_lib
from evaluation import worker
from evaluation.executors import base
from sbd_plugin import atomic

# Seconds between looks at the tasks and at the trainings' progress files.
POLL_SECONDS = 2.0


@dataclasses.dataclass
class Outcome:
  run_id: str
  status: str  # "finished", "skipped" (finished before), "failed"
  error: str = ""
  # Seconds per step (train, postprocess, each metric) from DONE.json.
  timings: Dict[str, float] = dataclasses.field(default_factory=dict)
  # A failed run's error.log (its full traceback), if the worker wrote one.
  error_log: str = ""


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
  if not os.path.exists(copy):
    if os.path.isdir(output_dir) and os.listdir(output_dir):
      raise study_lib.StudyError(
          "%s exists and is not a study folder; choose an empty or new "
          "--output folder." % output_dir)
    try:
      os.makedirs(output_dir, exist_ok=True)
      atomic.copy_if_absent(study.source, copy)
    except OSError as e:
      raise study_lib.StudyError("Cannot create the study folder %s: %s." % (
          output_dir, e.strerror or e)) from None
  check_same_study(study, output_dir)


def check_same_study(study, output_dir):
  """Raises StudyError unless the folder's study copy says what `study` says."""
  copy = layout.study_copy(output_dir)
  if not study_lib.same_study(copy, study.source):
    raise study_lib.StudyError(
        "%s already holds results of a different study (%s differs from %s "
        "in more than comments). Use another --output folder, or give the "
        "study file the folder was made with (its copy is %s)." % (
            output_dir, copy, study.source, copy))


def lock_output_dir(output_dir, what="sbd_study run"):
  """Takes the study folder's lock, or explains who holds it.

  Args:
    output_dir: The study folder.
    what: The command taking it, named to a runner that finds it held.
  """
  try:
    return processes.FolderLock(output_dir).acquire(what)
  except processes.LockedError as e:
    raise study_lib.StudyError(
        "%s is in use by another runner: %s. Wait for it to finish or stop "
        "it (a killed runner frees the folder at once)." % (output_dir, e)
    ) from None
  except PermissionError as e:
    raise study_lib.StudyError(
        "Cannot take the lock of %s (%s: permission denied). The folder "
        "belongs to another user: ask them to make it group-writable "
        "(chmod -R g+w), or use another --output folder." % (
            output_dir, e.filename)) from None


def worker_command(spec, phase):
  """The command that runs `phase` of the run whose spec is at `spec`."""
  return (sys.executable, "-m", "evaluation.worker", "--phase", phase, spec)


def tasks_left(output_dir, run, env=()):
  """Writes the run's spec; returns its tasks: train (unless done), evaluate.

  `env`: the tasks' extra environment (base.task_env).
  """
  directory = study_lib.run_dir(output_dir, run)
  os.makedirs(directory, exist_ok=True)
  spec = layout.run_spec(directory)
  atomic.write_text(spec, run.to_json())
  phases = list(base.PHASES)
  if worker.step_done(layout.model_dir(directory), "train"):
    phases.remove("train")
  return [base.Task(run.run_id, phase, worker_command(spec, phase),
                    layout.worker_log(directory), env) for phase in phases]


def _mark_attempt(task):
  """Starts the attempt's part of worker.log before its worker exists: an
  attempt that dies before the worker prints its own marker (a failed SLURM
  set-up line, a kill during start-up) is then not read as the last one.

  The marker starts a line of its own, also after an attempt killed in the
  middle of a line.
  """
  try:
    with open(task.log_path, "ab+") as log:  # Writes go to the end.
      size, cut = log.seek(0, os.SEEK_END), False
      if size:
        log.seek(size - 1)
        cut = log.read(1) != b"\n"
      log.write(("%s%s (%s phase, submitted by the runner)\n" % (
          "\n" if cut else "", worker.ATTEMPT_MARKER, task.phase)).encode())
  except OSError:
    pass  # Best effort: the task runs either way.


# The last line of a Python traceback: "ValueError: ...".
_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception)")


def _last_attempt_lines(directory):
  """The non-empty lines of worker.log after its last attempt marker.

  The marker may sit at the end of a line: an attempt killed while it wrote
  a line leaves it unfinished, and the next marker goes on from there.
  """
  try:
    with open(layout.worker_log(directory), errors="replace") as f:
      lines = [l.rstrip() for l in f if l.strip()]
  except FileNotFoundError:
    return []
  starts = [i for i, l in enumerate(lines) if worker.ATTEMPT_MARKER in l]
  return lines[starts[-1] + 1:] if starts else lines


def _error_excerpt(output_dir, run, error):
  """The line that says why a run's last attempt failed, whole.

  The last exception line the attempt wrote to worker.log (the worker prints
  its traceback there and into error.log): the first line of the message of
  the exception that ended it. Without one (a SIGKILL, a second worker),
  `error`, the executor's words, with the attempt's last line of output.
  Earlier attempts' lines are never used: they may name an error fixed since.
  """
  lines = _last_attempt_lines(study_lib.run_dir(output_dir, run))
  errors = [l for l in lines if _EXCEPTION_LINE.match(l)]
  if errors:
    return errors[-1]
  error = error or "worker exited without output"
  return "%s; its last output: %s" % (error, lines[-1]) if lines else error


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _stop_on_signals(executor, lock):
  """On SIGTERM or SIGINT: stop every task, free the folder, exit 128 + signal.

  The lock is released by hand: `os._exit` skips `finally` blocks, and where
  there is no flock the lock is a file only `release` removes.

  Returns:
    The handlers it replaced (for `_restore_signals`), {} off the main thread.
  """
  if threading.current_thread() is not threading.main_thread():
    return {}

  def handler(signum, unused_frame):
    executor.stop()
    lock.release()
    os._exit(128 + signum)  # pylint: disable=protected-access

  previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
  for sig in _STOP_SIGNALS:
    signal.signal(sig, handler)
  return previous


def _restore_signals(previous):
  """Puts back the handlers `_stop_on_signals` replaced (the report that
  follows a run holds another lock and no executor)."""
  for sig, handler in previous.items():
    signal.signal(sig, handler)


class Pipeline(object):
  """Runs each run's tasks in order, several runs at once, retrying failures.

  A run's next task (its evaluation) is queued when the one before
  succeeded. At most `limits[phase]` tasks of a phase run at once.
  """

  def __init__(self, executor, limits, retries):
    """Sets up an empty pipeline.

    Args:
      executor: evaluation.executors.base.Executor.
      limits: Dict phase -> most tasks of that phase at once (None: all).
      retries: Times a failed task is submitted again (0 if the executor
        retries tasks itself).
    """
    self._executor = executor
    self._limits = limits
    self._retries = 0 if executor.retries_tasks else retries
    self._waiting = {phase: collections.deque() for phase in base.PHASES}
    self._next = {}  # Task -> the task that follows it once it succeeded
    self._attempts = collections.Counter()
    self.running = {}  # Task -> time it was submitted
    self.retried = 0

  def add(self, tasks):
    """Queues one run's tasks (a list of base.Task, in order)."""
    self._next.update(zip(tasks, tasks[1:]))
    self._waiting[tasks[0].phase].append(tasks[0])

  def busy(self):
    return bool(self.running) or any(self._waiting.values())

  def count(self, phase):
    return sum(task.phase == phase for task in self.running)

  def start_ready(self):
    """Submits the queued tasks the limits allow, as one batch."""
    batch = []
    for phase, queue in self._waiting.items():
      limit = self._limits.get(phase)
      room = len(queue) if limit is None else limit - self.count(phase)
      for _ in range(min(room, len(queue))):
        batch.append(queue.popleft())
    now = time.time()
    for task in batch:
      self._attempts[task] += 1
      self.running[task] = now
      _mark_attempt(task)
    if batch:
      self._executor.submit(batch)

  def collect(self, timeout):
    """Waits up to `timeout` seconds for tasks; handles those that ended.

    Returns:
      [(run_id, error or None)] of the runs that have no task left.
    """
    ended = []
    for task, error in self._executor.wait(timeout):
      del self.running[task]
      if error is None and task in self._next:
        follower = self._next.pop(task)
        self._waiting[follower.phase].append(follower)
      elif (error is not None and self._attempts[task] <= self._retries and
            not base.cannot_retry(error)):
        self.retried += 1
        self._waiting[task.phase].appendleft(task)
      else:
        self._next.pop(task, None)
        ended.append((task.run_id, error))
    return ended


def task_limits(executor, jobs):
  """Most tasks of each phase at once.

  On this machine: `jobs` trainings (default 1) and one evaluation beside
  them. A cluster queues tasks by their resources: all are submitted, unless
  `jobs` caps each phase.
  """
  if executor.queues:
    return {"train": jobs, "evaluate": jobs}
  return {"train": jobs or 1, "evaluate": 1}


def _duration(seconds):
  seconds = int(round(seconds))
  if seconds >= 3600:
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
  if seconds >= 60:
    return "%dm%02ds" % (seconds // 60, seconds % 60)
  return "%ds" % seconds


def _rate_and_eta(progress):
  """'12.3 steps/s, ETA 4m05s' from a training's progress.json."""
  rate = progress.get("steps_per_second") or 0.0
  left = max(0, progress["total"] - progress["step"])
  eta = _duration(left / rate) if rate > 0 else "?"
  return "%.1f steps/s, ETA %s" % (rate, eta)


class _Progress(object):
  """The study's bar (runs ended) and a bar per running training."""

  MAX_TRAINING_BARS = 8

  def __init__(self, study, output_dir, done, enabled):
    self._output_dir = output_dir
    self._enabled = enabled
    self._bar = tqdm.tqdm(total=len(study.runs), initial=done, unit="run",
                          desc=study.name, disable=not enabled,
                          dynamic_ncols=True)
    self._training = {}  # run_id -> tqdm bar
    self._state = None
    self.failed = 0

  def run_ended(self, outcome):
    self.failed += outcome.status == "failed"
    self._bar.update(1)

  def update(self, pipeline):
    """Shows the pipeline's state and each running training's progress."""
    # Tasks submitted (on a cluster, some may still be queued).
    state = dict(train=pipeline.count("train"),
                 evaluate=pipeline.count("evaluate"), failed=self.failed,
                 retried=pipeline.retried)
    if state != self._state:  # A redraw is a new line in a log file.
      self._state = state
      self._bar.set_postfix(state)
    if self._enabled:
      self._show_trainings({task.run_id: since for task, since
                            in pipeline.running.items()
                            if task.phase == "train"})

  def _show_trainings(self, training):
    """A bar per running training, from its progress.json.

    Args:
      training: Dict run_id -> time its training task was submitted.
    """
    for run_id in set(self._training) - set(training):
      self._training.pop(run_id).close()
    for run_id, since in training.items():
      bar = self._training.get(run_id)
      if bar is None and len(self._training) >= self.MAX_TRAINING_BARS:
        continue
      try:
        progress = atomic.read_json(layout.progress_path(layout.model_dir(
            layout.run_dir(self._output_dir, run_id))))
      except OSError:  # Only a progress bar: never a reason to stop a study.
        continue
      # None yet, or left by an earlier attempt: the task is still queued.
      if not progress or progress.get("time", 0) < since:
        continue
      if bar is None:
        bar = self._training[run_id] = tqdm.tqdm(
            desc="  " + run_id, unit="step", leave=False, dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt}"
            " steps{postfix}")
      if bar.n != progress["step"] or bar.total != progress["total"]:
        bar.total, bar.n = progress["total"], progress["step"]
        bar.set_postfix_str(_rate_and_eta(progress))

  def close(self):
    for bar in self._training.values():
      bar.close()
    self._bar.close()


def settings(study, output_dir, overrides=None):
  """The executors' settings: the study's [resources], then the given flags."""
  values = dict(study.resources)
  given = {k: v for k, v in (overrides or {}).items() if v is not None}
  # Extra sbatch options add to the study's, option by option.
  sbatch = dict(values.get("sbatch", {}))
  sbatch.update(dict(given.pop("sbatch", ())))
  values.update(given, sbatch=sbatch)
  return base.Settings(output_dir=output_dir, **values)


def run_study(study, output_dir, executor="local", jobs=None, overrides=None,
              progress=True):
  """Executes every unfinished run of `study`.

  Args:
    study: evaluation.study.Study.
    output_dir: Study output folder (created, or resumed if it holds the
      same study), relative to the working directory or absolute. Must be
      on a filesystem shared by all nodes of a cluster.
    executor: A name of evaluation.executors.NAMES.
    jobs: Most trainings at once; None: 1 on this machine, as many as the
      resources of a cluster allow.
    overrides: Dict of base.Settings fields given on the command line
      (None values are ignored); they replace the study's [resources].
    progress: Show progress bars.

  Returns:
    List of Outcome, in the study's run order.

  Raises:
    study_lib.StudyError: bad output folder, one in use by another runner,
      or an executor that cannot start.
  """
  output_dir = os.path.abspath(output_dir)
  prepare_output_dir(study, output_dir)
  lock = lock_output_dir(output_dir)
  try:
    chosen = executors.create(executor, settings(study, output_dir, overrides))
    previous = _stop_on_signals(chosen, lock)
    try:
      return _run_all(study, output_dir, chosen, jobs, progress)
    except BaseException:
      chosen.stop()  # Leave no task running behind an error.
      raise
    finally:
      chosen.close()
      _restore_signals(previous)
  finally:
    lock.release()


def _outcome(output_dir, run, status, error=""):
  """An Outcome with the run's timings, if its DONE.json has them."""
  done = atomic.read_json(layout.done_path(study_lib.run_dir(output_dir, run)))
  timings = (done or {}).get("timings", {}) if status != "failed" else {}
  return Outcome(run.run_id, status, error, timings)


def _ended(output_dir, run, error):
  """The Outcome of a run whose last task ended (error None: succeeded)."""
  if error is None and study_lib.is_finished(output_dir, run):
    return _outcome(output_dir, run, "finished")
  outcome = _outcome(output_dir, run, "failed",
                     _error_excerpt(output_dir, run, error) if error else
                     "no DONE.json written")
  # error.log is this attempt's only if the attempt got the run's lock (the
  # worker then removes an earlier one) and ended on an exception.
  directory = study_lib.run_dir(output_dir, run)
  log = layout.error_path(directory)
  fresh = any(_EXCEPTION_LINE.match(l) for l in _last_attempt_lines(directory))
  outcome.error_log = log if fresh and os.path.exists(log) else ""
  return outcome


def _run_all(study, output_dir, executor, jobs, progress):
  """run_study's body, while the folder is locked."""
  outcomes = {}
  pipeline = Pipeline(executor, task_limits(executor, jobs),
                      executor.settings.retries)
  for run in study.runs:
    if study_lib.is_finished(output_dir, run):
      outcomes[run.run_id] = _outcome(output_dir, run, "skipped")
    else:
      pipeline.add(tasks_left(output_dir, run,
                              base.task_env(executor.settings)))
  runs = {run.run_id: run for run in study.runs}
  view = _Progress(study, output_dir, len(outcomes), progress)
  while pipeline.busy():
    pipeline.start_ready()
    for run_id, error in pipeline.collect(POLL_SECONDS):
      outcomes[run_id] = _ended(output_dir, runs[run_id], error)
      view.run_ended(outcomes[run_id])
    view.update(pipeline)
  view.close()
  return [outcomes[run.run_id] for run in study.runs]


def timings_table(outcomes):
  """Lines of a table of where each run's time went, or [] if none is known."""
  timed = [o for o in outcomes if o.timings]
  if not timed:
    return []
  steps = list(dict.fromkeys(s for o in timed for s in o.timings))
  rows = [[o.run_id] + [_duration(o.timings[s]) if s in o.timings else "-"
                        for s in steps] + [_duration(sum(o.timings.values()))]
          for o in timed]
  totals = [sum(o.timings.get(s, 0) for o in timed) for s in steps]
  rows.append(["all runs"] + [_duration(t) for t in totals + [sum(totals)]])
  return markdown.markdown_table(["run"] + steps + ["total"], rows)


def summarize(outcomes: List[Outcome]):
  """Returns a short human-readable summary of a study execution."""
  counts = {s: sum(o.status == s for o in outcomes)
            for s in ("finished", "skipped", "failed")}
  lines = ["%d runs: %d finished now, %d finished earlier, %d failed." % (
      len(outcomes), counts["finished"], counts["skipped"], counts["failed"])]
  for o in outcomes:
    if o.status == "failed":
      lines.append("  FAILED %s: %s" % (o.run_id, o.error))
      if o.error_log:
        lines.append("    full error: %s" % o.error_log)
  table = timings_table(outcomes)
  if table:
    lines += ["", "Where the time went, per step:"] + table
  return "\n".join(lines)
