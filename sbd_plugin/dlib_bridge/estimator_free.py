"""dlib's TPUEstimator, without tf.estimator: sessions and hooks only.

dlib 1.5 trains through `tf.contrib.tpu.TPUEstimator(use_tpu=False)`
(methods/unsupervised/train.py) and its model functions return
`TPUEstimatorSpec`s and compare `mode` with `tf.estimator.ModeKeys`
(methods/unsupervised/vae.py). TensorFlow 2.16+ ships no `tf.estimator`, and
`tensorflow-estimator` 2.15 does not import on it. What the Estimator does on
CPU is a short recipe over `tf.compat.v1`, which every TF 2.x still has; this
module is that recipe, for the calls dlib and the study runner make:
`TPUEstimator.train(input_fn, hooks, steps | max_steps, saving_listeners)`,
`evaluate(input_fn, steps, hooks, checkpoint_path, name)` and
`latest_checkpoint()`.

Each graph is built in the Estimator's order (tensorflow_estimator 2.15,
estimator.py `_train_model_default`, `_train_with_estimator_spec`,
`_evaluate_build_graph`; tpu_estimator.py `_create_global_step`,
`_call_input_fn`, `_ModelFnWrapper._call_model_fn`, `as_estimator_spec`):
graph seed, global step (a resource variable) and its read, input on the CPU,
model, loss summary, hooks, sharded Saver; the session gets the Estimator's
default ConfigProto (soft placement, one Grappler pass). Op-level seeds of
unseeded random ops are the graph's op count, so the order is what makes the
weights the same bits as the Estimator's (tests/test_estimator_free.py).

Left out, because dlib never uses them: TPUs, distribution strategies,
warm-starting, `predict`, `export_saved_model` (dlib exports through TF-Hub),
and TPUEstimator's examples-per-second summary (a TensorBoard curve only).
"""
import collections
import copy
import os

import tensorflow.compat.v1 as tf
from tensorflow.core.framework import summary_pb2  # pylint: disable=g-direct-tensorflow-import
from tensorflow.core.protobuf import rewriter_config_pb2  # pylint: disable=g-direct-tensorflow-import
from tensorflow.python.training import evaluation  # pylint: disable=g-direct-tensorflow-import
from tensorflow.python.training import training_util  # pylint: disable=g-direct-tensorflow-import


class ModeKeys(object):
  """tf.estimator.ModeKeys: the same strings."""
  TRAIN = "train"
  EVAL = "eval"
  PREDICT = "infer"


_USE_DEFAULT = object()


class TPUConfig(collections.namedtuple("TPUConfig", ["iterations_per_loop"])):
  """TPUConfig; only `iterations_per_loop` (unused on CPU) is accepted."""

  def __new__(cls, iterations_per_loop=2):
    return super(TPUConfig, cls).__new__(cls, iterations_per_loop)


class RunConfig(object):
  """tf.estimator.tpu.RunConfig: the settings a CPU run reads, same defaults.

  Args:
    tf_random_seed: Graph-level seed of every graph built.
    keep_checkpoint_max: Checkpoints kept.
    save_checkpoints_steps: Steps between checkpoints (exclusive with secs).
    save_checkpoints_secs: Seconds between checkpoints; 600 when neither is
      given, as in the Estimator.
    save_summary_steps: Steps between summaries.
    log_step_count_steps: Steps between loss / step-rate logs.
    keep_checkpoint_every_n_hours: Saver's keep_checkpoint_every_n_hours.
    session_config: tf.ConfigProto; the Estimator's default when None.
    tpu_config: TPUConfig (ignored on CPU).
  """

  def __init__(self, tf_random_seed=None, keep_checkpoint_max=5,
               save_checkpoints_steps=_USE_DEFAULT,
               save_checkpoints_secs=_USE_DEFAULT, save_summary_steps=100,
               log_step_count_steps=100, keep_checkpoint_every_n_hours=10000,
               session_config=None, tpu_config=None):
    if (save_checkpoints_steps is _USE_DEFAULT and
        save_checkpoints_secs is _USE_DEFAULT):
      save_checkpoints_steps, save_checkpoints_secs = None, 600
    elif save_checkpoints_steps is _USE_DEFAULT:
      save_checkpoints_steps = None
    elif save_checkpoints_secs is _USE_DEFAULT:
      save_checkpoints_secs = None
    if save_checkpoints_steps and save_checkpoints_secs:
      raise ValueError("Give save_checkpoints_steps or save_checkpoints_secs, "
                       "not both.")
    self.tf_random_seed = tf_random_seed
    self.keep_checkpoint_max = keep_checkpoint_max
    self.save_checkpoints_steps = save_checkpoints_steps
    self.save_checkpoints_secs = save_checkpoints_secs
    self.save_summary_steps = save_summary_steps
    self.log_step_count_steps = log_step_count_steps
    self.keep_checkpoint_every_n_hours = keep_checkpoint_every_n_hours
    self.session_config = session_config or default_session_config()
    self.tpu_config = tpu_config or TPUConfig()


def default_session_config():
  """The Estimator's ConfigProto (run_config.get_default_session_config)."""
  rewrite_options = rewriter_config_pb2.RewriterConfig(
      meta_optimizer_iterations=rewriter_config_pb2.RewriterConfig.ONE)
  return tf.ConfigProto(
      allow_soft_placement=True,
      graph_options=tf.GraphOptions(rewrite_options=rewrite_options))


_SPEC_FIELDS = ("mode", "predictions", "loss", "train_op", "eval_metrics",
                "export_outputs", "scaffold_fn", "host_call", "training_hooks",
                "evaluation_hooks", "prediction_hooks")


class TPUEstimatorSpec(collections.namedtuple("TPUEstimatorSpec",
                                              _SPEC_FIELDS)):
  """What a model_fn returns: TPUEstimatorSpec's fields, nothing checked."""

  def __new__(cls, mode, predictions=None, loss=None, train_op=None,
              eval_metrics=None, export_outputs=None, scaffold_fn=None,
              host_call=None, training_hooks=None, evaluation_hooks=None,
              prediction_hooks=None):
    return super(TPUEstimatorSpec, cls).__new__(
        cls, mode, predictions, loss, train_op, eval_metrics, export_outputs,
        scaffold_fn, host_call, tuple(training_hooks or ()),
        tuple(evaluation_hooks or ()), tuple(prediction_hooks or ()))

  def scaffold(self):
    return (self.scaffold_fn() if self.scaffold_fn else None) or (
        tf.train.Scaffold())

  def eval_metric_ops(self):
    """The metric ops of `eval_metrics` (as_estimator_spec on CPU)."""
    if self.eval_metrics is None:
      return {}
    metric_fn, tensors = self.eval_metrics
    if isinstance(tensors, (tuple, list)):
      return dict(metric_fn(*tensors))
    return dict(metric_fn(**tensors))


def _create_global_step(graph):
  """tpu_estimator._create_global_step: a resource int64 variable."""
  with graph.as_default() as g, g.name_scope(None):
    return tf.get_variable(
        tf.GraphKeys.GLOBAL_STEP, shape=[], dtype=tf.int64,
        initializer=tf.initializers.zeros(), trainable=False,
        use_resource=True,
        collections=[tf.GraphKeys.GLOBAL_VARIABLES,
                     tf.GraphKeys.GLOBAL_STEP])


def _checkpoint_step(model_dir):
  path = tf.train.latest_checkpoint(model_dir)
  if path is None:
    return 0
  return int(tf.train.load_checkpoint(path).get_tensor(
      tf.GraphKeys.GLOBAL_STEP))


class TPUEstimator(object):
  """TPUEstimator(use_tpu=False): train, evaluate, latest_checkpoint.

  Args:
    model_fn: fn(features, labels, mode, params) -> TPUEstimatorSpec (it may
      also take `config`).
    model_dir: Checkpoint folder.
    config: RunConfig.
    params: Dict passed to model_fn and input_fn (deep-copied per call).
    use_tpu: Must be False.
    train_batch_size: params["batch_size"] in training.
    eval_batch_size: params["batch_size"] in evaluation.
  """

  def __init__(self, model_fn, model_dir=None, config=None, params=None,
               use_tpu=False, train_batch_size=None, eval_batch_size=None,
               **unused):
    if use_tpu:
      raise ValueError("sbd_plugin's TPUEstimator runs on CPU/GPU only "
                       "(use_tpu=False), as dlib's trainer does.")
    del unused  # predict_batch_size etc.: nothing dlib sets.
    self._model_fn = model_fn
    self._config = config or RunConfig()
    self._model_dir = model_dir
    self._params = dict(params or {})
    self._batch_size = {ModeKeys.TRAIN: train_batch_size,
                        ModeKeys.EVAL: eval_batch_size}

  @property
  def model_dir(self):
    return self._model_dir

  @property
  def config(self):
    return self._config

  def latest_checkpoint(self):
    return tf.train.latest_checkpoint(self._model_dir)

  def eval_dir(self, name=None):
    return os.path.join(self._model_dir, "eval" if not name else "eval_" + name)

  # --- graph building, in the Estimator's order ---------------------------

  def _params_for(self, mode):
    params = copy.deepcopy(self._params)
    if self._batch_size[mode] is not None:
      params["batch_size"] = self._batch_size[mode]
    return params

  def _call_input_fn(self, input_fn, mode):
    with tf.device("/device:CPU:0"):
      result = input_fn(params=self._params_for(mode))
    if isinstance(result, tf.data.Dataset):
      result = tf.data.make_one_shot_iterator(result).get_next()
    if isinstance(result, (tuple, list)) and len(result) == 2:
      return result[0], result[1]
    return result, None

  def _call_model_fn(self, features, labels, mode):
    params = self._params_for(mode)
    params["use_tpu"] = False
    spec = self._model_fn(features=features, labels=labels, mode=mode,
                          params=params)
    if not isinstance(spec, TPUEstimatorSpec):
      raise ValueError("model_fn should return a TPUEstimatorSpec.")
    return spec

  def _start_graph(self, graph):
    tf.set_random_seed(self._config.tf_random_seed)
    global_step = _create_global_step(graph)
    assert global_step is tf.train.get_global_step()
    return global_step

  # --- train ----------------------------------------------------------------

  def train(self, input_fn, hooks=None, steps=None, max_steps=None,
            saving_listeners=None):
    """Estimator.train on CPU/GPU.

    Args:
      input_fn: fn(params) -> features tensor (or (features, labels)).
      hooks: List of SessionRunHooks.
      steps: Steps to train (incremental), or None.
      max_steps: Global step to train up to, or None.
      saving_listeners: CheckpointSaverListeners of the checkpoint hook.

    Returns:
      self.
    """
    if steps is not None and max_steps is not None:
      raise ValueError("Can not provide both steps and max_steps.")
    for name, value in (("steps", steps), ("max_steps", max_steps)):
      if value is not None and value <= 0:
        raise ValueError("Must specify %s > 0, given: %s" % (name, value))
    if max_steps is not None and max_steps <= _checkpoint_step(
        self._model_dir):
      tf.logging.info("Skipping training since max_steps has already saved.")
      return self
    hooks = list(hooks or [])
    if steps is not None or max_steps is not None:
      hooks.append(tf.train.StopAtStepHook(steps, max_steps))
    with tf.Graph().as_default() as graph:
      self._start_graph(graph)
      training_util._get_or_create_global_step_read(graph)  # pylint: disable=protected-access
      features, labels = self._call_input_fn(input_fn, ModeKeys.TRAIN)
      spec = self._call_model_fn(features, labels, ModeKeys.TRAIN)
      loss = self._train_with_spec(spec, hooks, tf.train.get_global_step(),
                                   list(saving_listeners or []))
    tf.logging.info("Loss for final step: %s.", loss)
    return self

  def _train_with_spec(self, spec, hooks, global_step, saving_listeners):
    """Estimator._train_with_estimator_spec, single worker."""
    config = self._config
    scaffold = spec.scaffold()
    if not any(x.op.name == "loss"
               for x in tf.get_collection(tf.GraphKeys.SUMMARIES)):
      tf.summary.scalar("loss", spec.loss)
    tf.add_to_collection(tf.GraphKeys.LOSSES, spec.loss)
    worker_hooks = list(hooks)
    worker_hooks.append(tf.train.NanTensorHook(spec.loss))
    if config.log_step_count_steps is not None:
      worker_hooks.append(tf.train.LoggingTensorHook(
          {"loss": spec.loss, "step": global_step},
          every_n_iter=config.log_step_count_steps))
    worker_hooks.extend(spec.training_hooks)
    if not (scaffold.saver or tf.get_collection(tf.GraphKeys.SAVERS)):
      tf.add_to_collection(tf.GraphKeys.SAVERS, tf.train.Saver(
          sharded=True, max_to_keep=config.keep_checkpoint_max,
          keep_checkpoint_every_n_hours=config.keep_checkpoint_every_n_hours,
          defer_build=True, save_relative_paths=True))
    chief_hooks = []
    saver_hooks = [h for h in worker_hooks
                   if isinstance(h, tf.train.CheckpointSaverHook)]
    if (config.save_checkpoints_secs or config.save_checkpoints_steps) and (
        not saver_hooks):
      chief_hooks = [tf.train.CheckpointSaverHook(
          self._model_dir, save_secs=config.save_checkpoints_secs,
          save_steps=config.save_checkpoints_steps, scaffold=scaffold)]
      saver_hooks = chief_hooks
    if saving_listeners and not saver_hooks:
      raise ValueError("saving_listeners need a CheckpointSaverHook: set "
                       "save_checkpoints_steps or save_checkpoints_secs.")
    for listener in saving_listeners:
      if listener not in saver_hooks[0]._listeners:  # pylint: disable=protected-access
        saver_hooks[0]._listeners.append(listener)  # pylint: disable=protected-access
    loss = None
    with tf.train.MonitoredTrainingSession(
        master="", is_chief=True, checkpoint_dir=self._model_dir,
        scaffold=scaffold, hooks=worker_hooks,
        chief_only_hooks=tuple(chief_hooks), save_checkpoint_secs=0,
        save_summaries_steps=config.save_summary_steps,
        config=config.session_config, max_wait_secs=7200,
        log_step_count_steps=config.log_step_count_steps) as session:
      while not session.should_stop():
        _, loss = session.run([spec.train_op, spec.loss])
    return loss

  # --- evaluate ---------------------------------------------------------------

  def evaluate(self, input_fn, steps=None, hooks=None, checkpoint_path=None,
               name=None):
    """Estimator.evaluate on CPU/GPU.

    Args:
      input_fn: fn(params) -> features tensor; evaluation runs until it ends
        (or `steps` batches).
      steps: Batches to evaluate, or None (until the input ends).
      hooks: List of SessionRunHooks.
      checkpoint_path: Checkpoint to evaluate (default: the newest).
      name: Suffix of the eval summary folder.

    Returns:
      Dict from metric name (and "loss", "global_step") to its value.
    """
    hooks = list(hooks or [])
    if steps is not None:
      if steps <= 0:
        raise ValueError("Must specify steps > 0, given: %s" % steps)
      hooks.append(evaluation._StopAfterNEvalsHook(num_evals=steps))  # pylint: disable=protected-access
    if not checkpoint_path:
      checkpoint_path = self.latest_checkpoint()
    with tf.Graph().as_default() as graph:
      global_step = self._start_graph(graph)
      features, labels = self._call_input_fn(input_fn, ModeKeys.EVAL)
      spec = self._call_model_fn(features, labels, ModeKeys.EVAL)
      metric_ops = spec.eval_metric_ops()
      if "loss" in metric_ops:
        raise ValueError("A metric named 'loss' is not allowed: the loss is "
                         "reported under that name.")
      metric_ops["loss"] = tf.metrics.mean(spec.loss)
      update_ops, eval_dict = [], {}
      for key, (value, update) in sorted(metric_ops.items()):
        eval_dict[key] = value
        update_ops.append(update)
      eval_dict[tf.GraphKeys.GLOBAL_STEP] = global_step
      results = evaluation._evaluate_once(  # pylint: disable=protected-access
          checkpoint_path=checkpoint_path, master="",
          scaffold=spec.scaffold(), eval_ops=tf.group(*update_ops),
          final_ops=eval_dict, hooks=hooks + list(spec.evaluation_hooks),
          config=self._config.session_config)
    _write_eval_summary(self.eval_dir(name), results, checkpoint_path)
    return results


def _write_eval_summary(output_dir, results, checkpoint_path):
  """The Estimator's eval events: each scalar, and the checkpoint's path."""
  summary = summary_pb2.Summary()
  for key, value in results.items():
    if key != tf.GraphKeys.GLOBAL_STEP and value is not None:
      summary.value.add(tag=key, simple_value=float(value))
  if checkpoint_path:
    summary.value.add(tag="checkpoint_path").tensor.CopyFrom(
        tf.make_tensor_proto(checkpoint_path))
  writer = tf.summary.FileWriterCache.get(output_dir)
  writer.add_summary(summary, int(results[tf.GraphKeys.GLOBAL_STEP]))
  writer.flush()
