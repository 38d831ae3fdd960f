"""Executes one study run in its own process: dlib train -> postprocess -> evaluate.

Usage: python -m evaluation.worker <output_dir>/runs/<run_id>/run.json

Calls dlib's own `*_with_gin` functions (what the dlib_* scripts call) and
writes dlib's layout (as dlib_reproduce does; see `evaluation.layout`).
A step counts as done only when its result JSON parses; a step cut short is
redone, never trusted. Training resumes from its newest checkpoint
(`sbd_plugin.dlib_bridge.resumable_train`); postprocessing and each metric
are redone from scratch. DONE.json is written last and atomically; only then
does the run count as finished.

The worker holds `<run_dir>/.lock` while it works, so two workers never write
the same run, and dies with the process that started it.
"""
import errno
import os
import shutil
import sys
import time
import traceback

from evaluation import faults
from evaluation import layout
from evaluation import processes
from evaluation import study as study_lib


def _step_done(step_dir, kind):
  from sbd_plugin import atomic  # pylint: disable=g-import-not-at-top
  return atomic.read_json(layout.step_result(step_dir, kind)) is not None


def _fresh(step_dir):
  """Removes what a killed earlier attempt left of this step."""
  if os.path.exists(step_dir):
    shutil.rmtree(step_dir)


def execute(run, directory):
  """Runs the missing steps of `run` inside `directory`.

  Args:
    run: evaluation.study.Run to execute.
    directory: The run's folder (holds run.json).

  Returns:
    Dict written to DONE.json.
  """
  # Imported here so that only the worker process loads TensorFlow.
  from disentanglement_lib.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.postprocessing import postprocess  # pylint: disable=g-import-not-at-top
  from sbd_plugin import machine  # pylint: disable=g-import-not-at-top
  from sbd_plugin import versions  # pylint: disable=g-import-not-at-top
  from sbd_plugin.dlib_bridge import resumable_train  # pylint: disable=g-import-not-at-top

  start = time.time()
  dataset = ["dataset.name = %s" % study_lib.gin_literal(run.dataset)]
  dataset += list(run.dataset_bindings)
  model_dir = layout.model_dir(directory)
  if not _step_done(model_dir, "train"):
    faults.point("train")
    resumable_train.train_with_gin(
        model_dir, list(run.model_configs),
        list(run.train_bindings) + list(run.dataset_bindings))
  mean_dir = layout.postprocessed_dir(directory)
  if not _step_done(mean_dir, "postprocess"):
    faults.point("postprocess")
    _fresh(mean_dir)
    # The dataset is bound explicitly: dlib's "auto" would carry only its
    # name, not the dataset's own gin parameters.
    postprocess.postprocess_with_gin(model_dir, mean_dir, False,
                                     [run.postprocess_config], dataset)
  for metric, config in run.metric_configs:
    metric_dir = layout.metric_dir(directory, metric)
    if not _step_done(metric_dir, "evaluation"):
      faults.point("metric:" + metric)
      _fresh(metric_dir)
      evaluate.evaluate_with_gin(
          mean_dir, metric_dir, False, [config],
          dataset + ["evaluation.name = %s" % study_lib.gin_literal(metric)] +
          list(run.metric_bindings))
  return {"run_id": run.run_id, "seconds": time.time() - start,
          "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
          "versions": versions.library_versions(),
          # CPU type, SIMD level, oneDNN and determinism: numbers differ in
          # the last bits across them.
          "machine": machine.run_record()}


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


def main(argv):
  if len(argv) != 2:
    print(__doc__, file=sys.stderr)
    return 2
  processes.die_with_parent()
  run_json = argv[1]
  directory = os.path.dirname(os.path.abspath(run_json))
  with open(run_json) as f:
    run = study_lib.Run.from_json(f.read())
  try:
    lock = processes.FolderLock(directory).acquire("worker of " + run.run_id)
  except processes.LockedError as e:
    print("Run %s is being written by another worker: %s." % (run.run_id, e),
          file=sys.stderr)
    return 3
  from sbd_plugin import atomic  # pylint: disable=g-import-not-at-top
  try:
    done = execute(run, directory)
    if os.path.exists(layout.error_path(directory)):
      os.remove(layout.error_path(directory))
    atomic.write_json(layout.done_path(directory), done, indent=1)
  except BaseException as e:  # pylint: disable=broad-except
    _write_error(directory, e)
    return 1
  finally:
    lock.release()
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
