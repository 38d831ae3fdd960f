"""Executes one study run in its own process: dlib train -> postprocess -> evaluate.

Usage: python -m evaluation.worker [--phase train|evaluate|all] \
           <output_dir>/runs/<run_id>/run.json

The `train` phase trains the model (the GPU part); `evaluate` postprocesses
it and computes every metric (on CPUs: the worker hides the GPUs), then
writes DONE.json; `all` (the default) does both. The runner runs the two
phases as separate tasks, so one run's metrics overlap the next training.

Calls dlib's own `*_with_gin` functions (what the dlib_* scripts call) and
writes dlib's layout (as dlib_reproduce does; see `evaluation.layout`).
A step counts as done only when its result JSON parses; a step cut short is
redone, never trusted. Training resumes from its newest checkpoint
(`sbd_plugin.dlib_bridge.resumable_train`) and reports its progress in
`model/progress.json`; postprocessing and each metric are redone from
scratch. The seconds of each step go to `timings.json` (a training's over
all its attempts, a redone step's from the attempt that made its result),
and into DONE.json, which is written last and atomically; only then does
the run count as finished.

The worker holds `<run_dir>/.lock` while it works, so two workers never write
the same run, and dies with the process that started it.
"""
import argparse
import contextlib
import errno
import os
import shutil
import signal
import sys
import threading
import time
import traceback

from evaluation import faults
from evaluation import layout
from evaluation import processes
from evaluation import study as study_lib
from sbd_plugin import atomic
from sbd_plugin import machine
from sbd_plugin import portable
from sbd_plugin import provenance
from sbd_plugin import versions

PHASES = ("train", "evaluate", "all")
# The first line of each attempt's output in worker.log.
ATTEMPT_MARKER = "[worker] attempt starts"
# Exit status of a worker that failed on an error a retry cannot change (bad
# configuration, a gin error, a bad value): the runner does not retry it.
CANNOT_RETRY_EXIT = 4
# Such errors. gin reports unknown names and bad values as ValueError or
# SyntaxError, and re-raises errors inside configurables with their type.
_CANNOT_RETRY = (ValueError, TypeError, SyntaxError, ImportError, NameError,
                 AttributeError, KeyError, NotImplementedError)


def cannot_retry(error):
  """True if `error` will happen again however often the step is retried."""
  if isinstance(error, OSError):  # A full disk, a lost mount: may clear.
    return False
  # gin's "Required bindings for `x` not provided in config".
  return isinstance(error, _CANNOT_RETRY) or (
      isinstance(error, RuntimeError) and "Required bindings" in str(error))


def step_done(step_dir, kind):
  """True once the dlib step in `step_dir` wrote a result that parses."""
  return atomic.read_json(layout.step_result(step_dir, kind)) is not None


def _fresh(step_dir):
  """Removes what a killed earlier attempt left of this step."""
  if os.path.exists(step_dir):
    shutil.rmtree(step_dir)


@contextlib.contextmanager
def _timed(directory, step, resumed):
  """Records the seconds of the block in `timings.json` under `step`.

  The seconds are what the step cost (the run's times in the runner's
  summary, DONE.json and the "Time on 2 cores" estimates).

  Args:
    directory: The run's folder.
    step: "train", "postprocess", a metric's name or "metrics".
    resumed: True for a step that goes on from what earlier attempts did (a
      training resumes from its newest checkpoint): the seconds of every
      attempt add up, finished or stopped by an error or SIGTERM; only a
      SIGKILLed attempt's are lost. False for a step redone from scratch
      (`_fresh`): an earlier attempt's seconds bought nothing the result
      uses, so they are replaced by this attempt's.
  """
  start = time.time()
  try:
    yield
  finally:
    path = layout.timings_path(directory)
    try:
      timings = atomic.read_json(path) or {}
      timings[step] = (timings.get(step, 0.0) if resumed else 0.0) + (
          time.time() - start)
      atomic.write_json(path, timings, indent=1)
    except OSError:
      pass  # A full disk, an unreadable file: the step's own error matters more.


def _dataset_bindings(run):
  # The dataset is bound explicitly at every step: dlib's "auto" would carry
  # only its name, not the dataset's own gin parameters.
  return ["dataset.name = %s" % study_lib.gin_literal(run.dataset)] + list(
      run.dataset_bindings)


def data_source(run):
  """Where the run's images come from: the dataset built once more, here.

  Every step built it already (in this process or another); building it
  again is cheap (cached, memory-mapped) and records its source
  (`sbd_plugin.datasets.sources`) whichever steps this process ran.

  Returns:
    Dict: the dataset name and bindings, and `sources`, a list of dicts
    (DeepMind's file with its path and SHA-256, or the generator with its
    cache checksum); for dlib's own datasets, dlib's data folder. `error`
    instead of `sources` if the dataset cannot be built here.
  """
  # pylint: disable=g-import-not-at-top
  from evaluation import analysis
  from sbd_plugin.datasets import data_dir
  from sbd_plugin.datasets import sources
  # pylint: enable=g-import-not-at-top
  record = {"dataset": run.dataset, "bindings": list(run.dataset_bindings)}
  sources.clear()
  try:
    analysis.load_dataset(run.dataset, run.dataset_bindings)
  except Exception as e:  # pylint: disable=broad-except
    # The metrics are computed: a missing record must not lose them.
    record["error"] = "%s: %s" % (type(e).__name__, e)
    return record
  record["sources"] = sources.recorded() or [{
      "what": "dlib's own dataset", "kind": "dlib",
      "data_dir": os.path.realpath(data_dir.path("")),
      "note": "built by dlib's loader from its data folder; not hashed"}]
  return record


def train(run, directory):
  """The train phase: trains (or resumes) the model unless it is trained."""
  model_dir = layout.model_dir(directory)
  if run.external or step_done(model_dir, "train"):
    return  # An external model is trained already, elsewhere.
  # Imported here: the trainer imports TensorFlow, which the runner process
  # (it imports this module) never loads. dlib is adapted first, as for dlib's
  # own commands.
  # pylint: disable=g-import-not-at-top
  from sbd_plugin import dlib_bridge
  dlib_bridge.activate()
  from sbd_plugin.dlib_bridge import resumable_train
  # pylint: enable=g-import-not-at-top
  faults.point("train")
  _record_train_attempt(directory)
  with _timed(directory, "train", resumed=True):
    resumable_train.train_with_gin(
        model_dir, list(run.model_configs),
        list(run.train_bindings) + list(run.dataset_bindings),
        progress_path=layout.progress_path(model_dir))


def _provenance():
  """Library versions, machine and plugin source of this process."""
  return {"versions": versions.library_versions(),
          # CPU type, SIMD level, oneDNN and determinism: numbers differ in
          # the last bits across them.
          "machine": machine.run_record(),
          provenance.SOURCE_KEY: provenance.source_revision()}


def _record_train_attempt(directory):
  """Appends this training attempt's host, machine and source to the run's
  train_attempts.json: on a cluster, or after a resume with other code, the
  weights may come from elsewhere than the metrics."""
  path = layout.train_attempts_path(directory)
  attempts = atomic.read_json(path)
  attempts = attempts if isinstance(attempts, list) else []
  attempts.append(dict(_provenance(), host=os.uname().nodename,
                       started=time.strftime("%Y-%m-%dT%H:%M:%S")))
  atomic.write_json(path, attempts, indent=1)


def evaluate(run, directory):
  """The evaluate phase: postprocesses the model and computes each metric.

  Args:
    run: evaluation.study.Run to execute.
    directory: The run's folder (holds run.json).

  Returns:
    Dict written to DONE.json.

  Raises:
    RuntimeError: if the run is not trained yet.
  """
  if run.external:
    return _evaluate_external(run, directory)
  # Imported here: dlib's steps import TensorFlow (see `train`).
  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation import evaluate as dlib_evaluate
  from disentanglement_lib.postprocessing import postprocess
  # pylint: enable=g-import-not-at-top
  model_dir = layout.model_dir(directory)
  if not step_done(model_dir, "train"):
    raise RuntimeError("Run %s is not trained yet: run its train phase "
                       "first." % run.run_id)
  dataset = _dataset_bindings(run)
  mean_dir = layout.postprocessed_dir(directory)
  if not step_done(mean_dir, "postprocess"):
    faults.point("postprocess")
    _fresh(mean_dir)
    with _timed(directory, "postprocess", resumed=False):
      postprocess.postprocess_with_gin(model_dir, mean_dir, False,
                                       [run.postprocess_config], dataset)
  for metric, config in run.metric_configs:
    metric_dir = layout.metric_dir(directory, metric)
    if not step_done(metric_dir, "evaluation"):
      faults.point("metric:" + metric)
      _fresh(metric_dir)
      with _timed(directory, metric, resumed=False):
        dlib_evaluate.evaluate_with_gin(
            mean_dir, metric_dir, False, [config],
            dataset + ["evaluation.name = %s" % study_lib.gin_literal(metric)]
            + list(run.metric_bindings))
  return _done_record(run, directory)


def _evaluate_external(run, directory):
  """Scores a model trained elsewhere with the run's metrics.

  sbd_plugin.scoring writes each metric where a trained run's metric goes
  (layout.metric_dir) and keeps metrics finished there; its record is named
  after the run, so the aggregation finds the run.
  """
  from sbd_plugin.scoring import api  # pylint: disable=g-import-not-at-top
  spec = dict(run.external)
  output = os.path.dirname(layout.metric_dir(directory,
                                             run.metric_configs[0][0]))
  common = dict(seed=0, metric_bindings=list(run.metric_bindings),
                dataset_bindings=list(run.dataset_bindings),
                output_dir=output, name=run.run_id,
                configs=list(run.metric_configs),
                log=lambda line: print("[worker] " + line, flush=True))
  faults.point("metric:" + run.metric_configs[0][0])
  # Resumed: the metrics an earlier attempt finished are kept, not redone.
  with _timed(directory, "metrics", resumed=True):
    if spec["kind"] == "onnx":
      api.score_onnx(spec["source"], run.dataset,
                     input_layout=spec["input_layout"], **common)
    else:
      api.score(api.load_function(spec["source"], run.seed), run.dataset,
                record={"path": spec["source"]}, **common)
  return _done_record(run, directory)


def _done_record(run, directory):
  """The run's DONE.json: timings, versions, machine, code and data."""
  timings = atomic.read_json(layout.timings_path(directory)) or {}
  # versions, machine and source are the evaluating process's; training's
  # are its attempts' (None for runs trained before they were recorded).
  return dict(_provenance(), run_id=run.run_id,
              seconds=sum(timings.values()), timings=timings,
              finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
              train_attempts=(layout.EXTERNAL_TRAINING if run.external else
                              atomic.read_json(
                                  layout.train_attempts_path(directory))),
              **{provenance.DATA_KEY: data_source(run)})


def _disk_full(error, directory):
  """Says what to do if `error` came from a full disk, else returns None."""
  text = "%s" % error
  chain = [error, error.__cause__, error.__context__]
  if not (any(isinstance(e, OSError) and e.errno == errno.ENOSPC
              for e in chain) or "No space left on device" in text):
    return None
  free = shutil.disk_usage(directory).free / 2**20
  return ("The disk holding %s is full (%.0f MiB free). Free some space and "
          "run the study again: finished steps and checkpoints are kept." % (
              directory, free))


def _write_error(directory, error):
  """Records the failure in error.log (best effort: the disk may be full)."""
  text = traceback.format_exc()
  hint = _disk_full(error, directory)
  if hint:
    text += "\nDiskFullError: %s\n" % hint
  try:
    with open(layout.error_path(directory), "w") as f:
      f.write(text)
  except OSError:
    pass
  print(text, file=sys.stderr)


def _set_gpus(phase):
  """Keeps evaluation off the GPUs; lets trainings share one."""
  if phase == "evaluate":
    # Metrics run on CPUs (Ray and SLURM give this task no GPU).
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
  # Without it, the first TensorFlow process on a GPU reserves all its memory
  # and a second run sharing that GPU fails.
  os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")


def _execute(run, directory, phase):
  """Runs `phase` of `run`; once evaluated, writes DONE.json."""
  # Portable mode promised: every pinned variable in force since start-up.
  portable.check()
  print("[worker] %s phase of %s starts at %.3f (pid %d)" % (
      phase, run.run_id, time.time(), os.getpid()), flush=True)
  if phase in ("train", "all"):
    train(run, directory)
  if phase in ("evaluate", "all"):
    done = evaluate(run, directory)
    if os.path.exists(layout.error_path(directory)):
      os.remove(layout.error_path(directory))
    atomic.write_json(layout.done_path(directory), done, indent=1)


def _parser():
  parser = argparse.ArgumentParser(prog="python -m evaluation.worker",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--phase", choices=PHASES, default="all")
  parser.add_argument("run_json", help="the run's spec, runs/<id>/run.json")
  return parser


class _Stopped(BaseException):
  """SIGTERM arrived (the runner stops, a cluster job is pre-empted)."""


def _raise_stopped(unused_signum, unused_frame):
  raise _Stopped()


# Seconds before a SIGTERM whose `_Stopped` a finalizer dropped is sent again.
_STOP_AGAIN_SECONDS = 0.1


class _StopAgain(object):
  """Sends SIGTERM again when a finalizer dropped the `_Stopped` it raised.

  Python runs the SIGTERM handler wherever the main thread is, also inside
  a `__del__`, a weakref callback or the garbage collector, which print an
  exception raised there ("Exception ignored in") and go on: the worker
  would run until the runner's SIGKILL and leave its lock file (where there
  is no flock) behind. Installed as `sys.unraisablehook`, this sees the
  dropped `_Stopped`; its thread sends the signal again a moment later,
  once the main thread has left the finalizer (if it is in another one, the
  same happens again). The thread sends it, not the hook: the handler would
  then raise inside the hook, which drops the exception as well.
  """

  def __init__(self, previous):
    """Starts the thread that sends the signal again.

    Args:
      previous: The unraisable hook that reports every other exception.
    """
    self._previous = previous
    self._dropped = threading.Event()
    threading.Thread(target=self._send_again, name="stop_again",
                     daemon=True).start()

  def __call__(self, unraisable):
    try:
      if not isinstance(unraisable.exc_value, _Stopped):
        self._previous(unraisable)
        return
    except _Stopped:  # The signal sent again landed in this report.
      pass
    self._dropped.set()
    print("[worker] SIGTERM arrived in a finalizer, which ignored it: "
          "stopping again", file=sys.stderr, flush=True)

  def _send_again(self):
    while True:
      self._dropped.wait()
      self._dropped.clear()
      time.sleep(_STOP_AGAIN_SECONDS)
      # To the main thread, whose handler raises (a blocking call there
      # returns at once); ignored once the attempt is ending (see `main`).
      signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)


def _die_of_sigterm():
  """Ends this process as SIGTERM's default action would (status -15)."""
  signal.signal(signal.SIGTERM, signal.SIG_DFL)
  os.kill(os.getpid(), signal.SIGTERM)


def main(argv):
  # Each attempt's output starts here: the runner reads why a run failed
  # from what follows the last marker of worker.log (appended to by every
  # attempt), never from an earlier attempt's.
  print("%s (pid %d)" % (ATTEMPT_MARKER, os.getpid()), flush=True)
  args = _parser().parse_args(argv[1:])
  processes.die_with_parent()
  _set_gpus(args.phase)
  directory = os.path.dirname(os.path.abspath(args.run_json))
  with open(args.run_json) as f:
    run = study_lib.Run.from_json(f.read())
  # SIGTERM unwinds through `finally`, which releases the lock: where there
  # is no flock the lock is a file, and a job requeued onto another node
  # would find it and stop. Once the attempt is ending, a second SIGTERM
  # (SLURM sends more than one) is ignored so that nothing cuts that short.
  sys.unraisablehook = _StopAgain(sys.unraisablehook)
  lock, code = None, 0
  try:
    signal.signal(signal.SIGTERM, _raise_stopped)
    lock = processes.FolderLock(directory).acquire("worker of " + run.run_id)
    if os.path.exists(layout.error_path(directory)):
      os.remove(layout.error_path(directory))  # An earlier attempt's.
    _execute(run, directory, args.phase)
  except processes.LockedError as e:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("Run %s is being written by another worker: %s. Wait for that "
          "worker to end and run the study again; if it is a SLURM job of an "
          "earlier runner, cancel it first (scancel --name "
          "sbd-<output folder>-train, ...-evaluate)." % (run.run_id, e),
          file=sys.stderr)
    code = 3
  except _Stopped:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("[worker] stopped by SIGTERM", file=sys.stderr, flush=True)
    code = None
  except BaseException as e:  # pylint: disable=broad-except
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _write_error(directory, e)
    code = CANNOT_RETRY_EXIT if cannot_retry(e) else 1
  finally:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if lock is not None:
      lock.release()
  if code is None:
    _die_of_sigterm()
  return code


if __name__ == "__main__":
  sys.exit(main(sys.argv))
