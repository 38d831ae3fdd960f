"""Executes one study run in its own process: dlib train -> postprocess -> evaluate.

Usage: python -m evaluation.worker <output_dir>/runs/<run_id>/run.json

Calls dlib's own `*_with_gin` functions (what the dlib_* scripts call) and
writes dlib's layout (as dlib_reproduce does):
  <run_dir>/model/                       dlib_train output
  <run_dir>/postprocessed/mean/          dlib_postprocess output
  <run_dir>/metrics/mean/<metric>/       dlib_evaluate output
Each step is skipped when its result file exists and redone from scratch when
its folder is incomplete, so a killed run resumes without losing finished
steps. DONE.json is written last; only then does the run count as finished.
"""
import json
import os
import shutil
import sys
import time
import traceback

from evaluation import study as study_lib


def _step_done(step_dir, result_name):
  return os.path.exists(os.path.join(step_dir, "results", "aggregate",
                                     result_name + ".json"))


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
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.postprocessing import postprocess  # pylint: disable=g-import-not-at-top
  from sbd_plugin import versions  # pylint: disable=g-import-not-at-top

  start = time.time()
  dataset = ["dataset.name = '%s'" % run.dataset] + list(run.dataset_bindings)
  model_dir = os.path.join(directory, "model")
  if not _step_done(model_dir, "train"):
    _fresh(model_dir)
    train.train_with_gin(model_dir, False, list(run.model_configs),
                         list(run.train_bindings) + list(run.dataset_bindings))
  mean_dir = os.path.join(directory, "postprocessed", "mean")
  if not _step_done(mean_dir, "postprocess"):
    _fresh(mean_dir)
    # The dataset is bound explicitly: dlib's "auto" would carry only its
    # name, not the dataset's own gin parameters.
    postprocess.postprocess_with_gin(model_dir, mean_dir, False,
                                     [run.postprocess_config], dataset)
  for metric, config in run.metric_configs:
    metric_dir = os.path.join(directory, "metrics", "mean", metric)
    if not _step_done(metric_dir, "evaluation"):
      _fresh(metric_dir)
      evaluate.evaluate_with_gin(
          mean_dir, metric_dir, False, [config],
          dataset + ["evaluation.name = '%s'" % metric] +
          list(run.metric_bindings))
  return {"run_id": run.run_id, "seconds": time.time() - start,
          "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
          "versions": versions.library_versions()}


def main(argv):
  if len(argv) != 2:
    print(__doc__, file=sys.stderr)
    return 2
  run_json = argv[1]
  directory = os.path.dirname(os.path.abspath(run_json))
  with open(run_json) as f:
    run = study_lib.Run.from_json(f.read())
  error_path = os.path.join(directory, study_lib.ERROR_FILE)
  try:
    done = execute(run, directory)
  except BaseException:  # pylint: disable=broad-except
    with open(error_path, "w") as f:
      f.write(traceback.format_exc())
    traceback.print_exc()
    return 1
  if os.path.exists(error_path):
    os.remove(error_path)
  tmp = os.path.join(directory, study_lib.DONE_FILE + ".tmp")
  with open(tmp, "w") as f:
    json.dump(done, f, indent=1)
  os.replace(tmp, os.path.join(directory, study_lib.DONE_FILE))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
