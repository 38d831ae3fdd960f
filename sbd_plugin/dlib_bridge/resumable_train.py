"""dlib's training procedure, resumable: the study runner's trainer.

dlib's `train` (disentanglement_lib/methods/unsupervised/train.py) deletes or
refuses an existing model folder and trains `steps=training_steps` more
steps, so a pre-empted 1.5M-step run starts over. `train_with_gin` here runs
the same procedure (same gin `model` configurable, same RunConfig seed,
estimator, TF-Hub export, evaluation and result files) with five changes:

- an existing model folder is kept, and training continues from its newest
  checkpoint up to `model.training_steps` steps in total (`max_steps`);
- checkpoints are written every `checkpoints.every_steps` steps or
  `checkpoints.every_seconds` seconds, whichever comes first;
- the input stream continues where it stopped: every checkpoint records how
  many batches training has consumed (`input_position.json`; FactorVAE's
  global step counts two per batch), and the resumed stream starts there
  (the chunk-indexed stream of `sbd_plugin.datasets.pipeline` skips without
  sampling);
- a TF-Hub export cut short by a kill is removed and redone;
- given a `progress_path`, the global step, the target and the steps/s are
  written there every `_ProgressWriter.EVERY_SECONDS` and at the end (the
  study runner shows them).

`install` puts a dispatcher inside dlib's gin wrapper of `model` that runs
this body only inside `train_with_gin` (`_resuming`), so `dlib_train` keeps
dlib's documented behaviour (refuse, or overwrite with --overwrite) and the
operative config still records every `model.*` parameter. A resumed run is
bit-identical to an uninterrupted one (tests/test_faults.py), given the
reproducibility fixes (`reproducibility.py`).
"""
import contextlib
import os
import shutil
import threading
import time

import gin
import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.python.training import basic_session_run_hooks  # pylint: disable=g-direct-tensorflow-import

_STATE = threading.local()


@gin.configurable("checkpoints", allowlist=["every_steps", "every_seconds"])
def checkpoint_options(every_steps=1000, every_seconds=600):
  """How often the study runner's training writes a checkpoint.

  Args:
    every_steps: Steps between checkpoints (>= 1).
    every_seconds: Seconds between checkpoints (>= 1); whichever of the two
      comes first triggers a checkpoint.

  Returns:
    Tuple (every_steps, every_seconds).
  """
  for name, value in (("every_steps", every_steps),
                      ("every_seconds", every_seconds)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError("checkpoints.%s must be a whole number >= 1, got %r." %
                       (name, value))
  return every_steps, every_seconds


class _StepsOrSecondsTimer(basic_session_run_hooks.SecondOrStepTimer):
  """Triggers every `every_steps` steps or `every_secs` seconds, the sooner."""

  def __init__(self, every_secs, every_steps):
    super(_StepsOrSecondsTimer, self).__init__(every_steps=every_steps)
    self._every_secs_too = every_secs

  def should_trigger_for_step(self, step):
    if self._last_triggered_step is None:
      return True
    if self._last_triggered_step == step:
      return False
    return (step >= self._last_triggered_step + self._every_steps or
            time.time() >= self._last_triggered_time + self._every_secs_too)


def _checkpoint_hooks(checkpoint_dir, every_steps, every_seconds, batches):
  """The checkpoint saver and the batch counter whose count it records."""
  counter = _BatchCounter(batches)
  hook = tf.train.CheckpointSaverHook(
      checkpoint_dir, save_steps=every_steps,
      listeners=[_PositionRecorder(checkpoint_dir, counter)])
  # CheckpointSaverHook takes steps or seconds; we want both.
  hook._timer = _StepsOrSecondsTimer(every_seconds, every_steps)  # pylint: disable=protected-access
  return [counter, hook]


POSITIONS = "input_position.json"


class _BatchCounter(tf.train.SessionRunHook):
  """Counts the training batches consumed (one per train_op run)."""

  def __init__(self, start):
    self.batches = start

  def after_run(self, run_context, run_values):
    self.batches += 1


class _PositionRecorder(tf.train.CheckpointSaverListener):
  """Writes, with every checkpoint, how many batches training consumed.

  Before the checkpoint, not after: a kill between the two would leave the
  newest checkpoint without its record, and a FactorVAE (2 steps per batch)
  would resume at the wrong batch. A record whose checkpoint was never
  written is never read.
  """

  def __init__(self, checkpoint_dir, counter):
    self._path = os.path.join(checkpoint_dir, POSITIONS)
    self._counter = counter

  def before_save(self, session, global_step_value):
    from sbd_plugin import atomic  # pylint: disable=g-import-not-at-top
    positions = atomic.read_json(self._path) or {}
    positions[str(int(global_step_value))] = self._counter.batches
    # keep_checkpoint_max is 2: older entries are never read again.
    recent = sorted(positions, key=int)[-8:]
    atomic.write_json(self._path, {k: positions[k] for k in recent})


class _ProgressWriter(tf.train.SessionRunHook):
  """Writes {step, total, steps_per_second, time} to a JSON file, atomically."""

  EVERY_SECONDS = 10.0

  def __init__(self, path, total):
    self._path = path
    self._total = total
    self._global_step = None
    self._last = None  # (time, step) of the last write.

  def begin(self):
    self._global_step = tf.train.get_global_step()

  def after_create_session(self, session, coord):
    self._write(int(session.run(self._global_step)), time.time())

  def before_run(self, run_context):
    return tf.train.SessionRunArgs(self._global_step)

  def after_run(self, run_context, run_values):
    now = time.time()
    if now >= self._last[0] + self.EVERY_SECONDS:
      self._write(int(run_values.results), now)

  def end(self, session):
    self._write(int(session.run(self._global_step)), time.time())

  def _write(self, step, now):
    from sbd_plugin import atomic  # pylint: disable=g-import-not-at-top
    rate = 0.0
    if self._last is not None and now > self._last[0]:
      rate = (step - self._last[1]) / (now - self._last[0])
    atomic.write_json(self._path, {"step": step, "total": self._total,
                                   "steps_per_second": rate, "time": now})
    self._last = (now, step)


def batches_consumed(checkpoint_dir, global_step):
  """Batches consumed up to the checkpoint of `global_step`.

  Args:
    checkpoint_dir: The estimator's folder.
    global_step: Step of the checkpoint training resumes from.

  Returns:
    Integer. For a checkpoint written without a record (by dlib_train), the
    global step: one batch per step, as for every model but FactorVAE.
  """
  from sbd_plugin import atomic  # pylint: disable=g-import-not-at-top
  positions = atomic.read_json(os.path.join(checkpoint_dir, POSITIONS)) or {}
  return int(positions.get(str(global_step), global_step))


def latest_step(checkpoint_dir):
  """Global step of the newest checkpoint in `checkpoint_dir` (0 if none)."""
  path = tf.train.latest_checkpoint(checkpoint_dir)
  if path is None:
    return 0
  return int(tf.train.load_checkpoint(path).get_tensor("global_step"))


def _make_input_fn(ground_truth_data, seed, skip_batches=0, num_batches=None):
  """dlib's train._make_input_fn, starting `skip_batches` batches in."""
  from disentanglement_lib.data.ground_truth import util  # pylint: disable=g-import-not-at-top

  def load_dataset(params):
    batch_size = params["batch_size"]
    dataset = util.tf_data_set_from_ground_truth_data(ground_truth_data, seed)
    if skip_batches:
      # The plugin's stream skips without sampling (pipeline._ChunkedDataSet).
      dataset = dataset.skip(skip_batches * batch_size)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if num_batches is not None:
      dataset = dataset.take(num_batches)
    return dataset.make_one_shot_iterator().get_next()

  return load_dataset


def _train(model_dir, overwrite=False, model=gin.REQUIRED,
           training_steps=gin.REQUIRED, random_seed=gin.REQUIRED,
           batch_size=gin.REQUIRED, eval_steps=1000, name="", model_num=None):
  """The body of dlib's `train`, resumable (see the module docstring)."""
  from sbd_plugin.dlib_bridge import reproducibility  # pylint: disable=g-import-not-at-top
  del overwrite, name, model_num  # Recorded by gin, as in dlib.
  with reproducibility.reproducible_training(random_seed):
    _train_from_checkpoint(model_dir, model, training_steps, random_seed,
                           batch_size, eval_steps)


def _train_from_checkpoint(model_dir, model, training_steps, random_seed,
                           batch_size, eval_steps):
  """`_train`'s body: dlib's procedure, resumable."""
  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.data.ground_truth import named_data
  from disentanglement_lib.methods.unsupervised import gaussian_encoder_model
  from disentanglement_lib.utils import results
  from sbd_plugin.dlib_bridge import stack_fixes
  # pylint: enable=g-import-not-at-top
  every_steps, every_seconds = checkpoint_options()
  random_state = np.random.RandomState(random_seed)
  dataset = named_data.get_named_ground_truth_data()
  checkpoint_dir = os.path.join(model_dir, "tf_checkpoint")
  tpu = stack_fixes.tpu_api()
  run_config = tpu.RunConfig(
      tf_random_seed=random_seed, keep_checkpoint_max=2,
      save_checkpoints_steps=every_steps,
      tpu_config=tpu.TPUConfig(iterations_per_loop=500))
  tpu_estimator = tpu.TPUEstimator(
      use_tpu=False, model_fn=model.model_fn, model_dir=checkpoint_dir,
      train_batch_size=batch_size, eval_batch_size=batch_size,
      config=run_config)
  experiment_timer = time.time()
  train_seed = random_state.randint(2**32)
  start = latest_step(checkpoint_dir)
  if start < training_steps:
    batches = batches_consumed(checkpoint_dir, start)
    hooks = _checkpoint_hooks(checkpoint_dir, every_steps, every_seconds,
                              batches)
    progress_path = getattr(_STATE, "progress_path", None)
    if progress_path:
      hooks.append(_ProgressWriter(progress_path, training_steps))
    tpu_estimator.train(
        input_fn=_make_input_fn(dataset, train_seed, skip_batches=batches),
        max_steps=training_steps, hooks=hooks)
  module_export_path = os.path.join(model_dir, "tfhub")
  if os.path.exists(module_export_path):  # An export cut short.
    shutil.rmtree(module_export_path)
  gaussian_encoder_model.export_as_tf_hub(
      model, dataset.observation_shape, tpu_estimator.latest_checkpoint(),
      module_export_path)
  results_dict = tpu_estimator.evaluate(input_fn=_make_input_fn(
      dataset, random_state.randint(2**32), num_batches=eval_steps))
  results_dict["elapsed_time"] = time.time() - experiment_timer
  results_dict["resumed_from_step"] = start
  results.update_result_directory(os.path.join(model_dir, "results"), "train",
                                  results_dict)


def _dispatching(stock_fn):
  """dlib's train body normally; the resumable one inside `_resuming`."""

  def train(*args, **kwargs):
    fn = _train if getattr(_STATE, "resuming", False) else stock_fn
    return fn(*args, **kwargs)

  return train


@contextlib.contextmanager
def _resuming(progress_path):
  _STATE.resuming = True
  _STATE.progress_path = progress_path
  try:
    yield
  finally:
    _STATE.resuming = False
    _STATE.progress_path = None


def install():
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  from sbd_plugin.dlib_bridge import gin_wrappers  # pylint: disable=g-import-not-at-top
  gin_wrappers.wrap_inner(train.train, _dispatching, "sbd_resumable")


def train_with_gin(model_dir, gin_config_files=None, gin_bindings=None,
                   progress_path=None):
  """dlib's train_with_gin, resuming from `model_dir`'s newest checkpoint.

  Args:
    model_dir: Model folder; kept if it exists.
    gin_config_files: List of gin config files to load.
    gin_bindings: List of gin bindings to use.
    progress_path: Optional JSON file that receives the training's step,
      target and steps/s every ten seconds and at its end.
  """
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  gin.parse_config_files_and_bindings(gin_config_files or [],
                                      gin_bindings or [])
  try:
    with _resuming(progress_path):
      train.train(model_dir, overwrite=False)
  finally:
    gin.clear_config()
