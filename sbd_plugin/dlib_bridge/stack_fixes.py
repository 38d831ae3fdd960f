"""What adapts disentanglement_lib 1.5 to Python 3.11 / TensorFlow 2.15.

dlib's installed files are never edited: each fix below is one function that
patches a module attribute or installs a shim from outside, and one line of
`FIXES` naming the dlib files it fixes and why. To add a fix, write its
function and add its line; to drop one (say a dlib release makes it
unnecessary), delete its line.

dlib modules are imported inside the fixes, never at the top of this file:
some of them only import once the earlier fixes are in place.
"""
import collections
import functools
import sys
import types

import gin
import numpy as np

FixInfo = collections.namedtuple("FixInfo", ["name", "dlib_files", "why",
                                             "apply"])


# --- tf.contrib is gone ----------------------------------------------------


def _assign_from_checkpoint_fn(model_path, var_list, ignore_missing_vars=False,
                               reshape_variables=False):
  """TF 2.x version of tf.contrib.framework.assign_from_checkpoint_fn.

  Args:
    model_path: Checkpoint path to restore from.
    var_list: Dict from checkpoint names to variables, or list of variables.
    ignore_missing_vars: Skip variables that are not in the checkpoint.
    reshape_variables: Allow restoring tensors of a different shape.

  Returns:
    A callable taking a session that restores the variables into it.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  if ignore_missing_vars:
    reader = tf.train.NewCheckpointReader(model_path)
    if isinstance(var_list, dict):
      var_list = {k: v for k, v in var_list.items() if reader.has_tensor(k)}
    else:
      var_list = [v for v in var_list if reader.has_tensor(v.op.name)]
  saver = tf.train.Saver(var_list, reshape=reshape_variables)

  def callback(session):
    saver.restore(session, model_path)

  return callback


TRAINER_ENV = "SBD_PLUGIN_TRAINER"


def tpu_api():
  """The TPUEstimator, TPUEstimatorSpec, RunConfig and TPUConfig dlib uses.

  The plugin's session-based stand-in (`estimator_free`) on every stack: it
  gives the Estimator's bits on TF 2.15 (tests/test_estimator_free.py), and
  TF 2.16+ has no Estimator. SBD_PLUGIN_TRAINER=estimator picks
  tf.compat.v1.estimator.tpu where it exists (TF <= 2.15), to compare.

  Returns:
    A module with the four names.

  Raises:
    ImportError: SBD_PLUGIN_TRAINER=estimator on a TF without tf.estimator,
      or another value than "estimator" or "session".
  """
  import os  # pylint: disable=g-import-not-at-top
  choice = os.environ.get(TRAINER_ENV, "session")
  if choice == "session":
    from sbd_plugin.dlib_bridge import estimator_free  # pylint: disable=g-import-not-at-top
    return estimator_free
  if choice != "estimator":
    raise ImportError("%s must be 'session' (default) or 'estimator', got %r."
                      % (TRAINER_ENV, choice))
  if not has_tf_estimator():
    raise ImportError("%s=estimator needs tf.estimator (TensorFlow <= 2.15); "
                      "unset it to use the plugin's trainer." % TRAINER_ENV)
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  return tf.estimator.tpu


def has_tf_estimator():
  """Whether this TensorFlow ships tf.estimator (2.15 and older)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  return importlib.util.find_spec("tensorflow_estimator") is not None and (
      _tf_version() < (2, 16))


def _tf_version():
  import importlib.metadata  # pylint: disable=g-import-not-at-top
  for name in ("tensorflow", "tensorflow-cpu"):
    try:
      version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      continue
    return tuple(int(p) for p in version.split(".")[:2])
  return (0, 0)


def _install_tf_contrib_shim():
  """Provides the parts of tf.contrib dlib imports (tpu, framework)."""
  contrib = types.ModuleType("tensorflow.contrib")
  contrib.__doc__ = "sbd_plugin shim for the parts of tf.contrib dlib uses."
  tpu = types.ModuleType("tensorflow.contrib.tpu")
  api = tpu_api()
  for name in ("RunConfig", "TPUConfig", "TPUEstimator", "TPUEstimatorSpec"):
    setattr(tpu, name, getattr(api, name))
  framework = types.ModuleType("tensorflow.contrib.framework")
  framework.assign_from_checkpoint_fn = _assign_from_checkpoint_fn
  contrib.tpu, contrib.framework = tpu, framework
  sys.modules.update({"tensorflow.contrib": contrib,
                      "tensorflow.contrib.tpu": tpu,
                      "tensorflow.contrib.framework": framework})


# --- TF1 graph mode ----------------------------------------------------------


def _install_graph_mode():
  """dlib 1.5 is TF1 code: sessions, placeholders, tf.train optimizers.

  TF 2.x executes eagerly by default; dlib's trainer builds its own graphs
  through the Estimator and is unaffected, but its library functions and
  shipped tests expect TF1's graph mode.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.disable_eager_execution()


# --- gin renamed whitelist/blacklist -----------------------------------------


def _translate_gin_keywords(fn):
  """Wraps a gin decorator factory to accept the pre-0.5 keyword names."""

  @functools.wraps(fn)  # Also sets __wrapped__: marks gin as patched.
  def wrapper(*args, **kwargs):
    if "whitelist" in kwargs:
      kwargs["allowlist"] = kwargs.pop("whitelist")
    if "blacklist" in kwargs:
      kwargs["denylist"] = kwargs.pop("blacklist")
    return fn(*args, **kwargs)

  return wrapper


def _install_gin_keyword_shim():
  """Lets gin 0.5's decorators take dlib's whitelist/blacklist keywords."""
  for name in ("configurable", "external_configurable"):
    original = getattr(gin, name)
    if not hasattr(original, "__wrapped__"):
      patched = _translate_gin_keywords(original)
      setattr(gin, name, patched)
      setattr(gin.config, name, patched)


# --- dlib_visualize_model's GIFs ---------------------------------------------


def _to_uint8_frames(images):
  return [np.asarray(np.clip(np.asarray(i) * 255.0 + 0.5, 0, 255), np.uint8)
          if np.asarray(i).dtype != np.uint8 else np.asarray(i)
          for i in images]


def _install_save_animation_fix():
  """imageio>=2.28 with Pillow rejects float frames; dlib passes floats."""
  import imageio  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.visualize import visualize_util  # pylint: disable=g-import-not-at-top

  def save_animation(list_of_animated_images, image_path, fps):
    full_size_images = []
    for single_images in zip(*list_of_animated_images):
      full_size_images.append(visualize_util.pad_around(
          visualize_util.add_below(
              visualize_util.padded_grid(list(single_images)))))
    # GIF wants a frame duration in ms; `fps` was removed from imageio's v3
    # Pillow plugin. loop=0 keeps dlib's looping animations.
    imageio.mimwrite(image_path, _to_uint8_frames(full_size_images),
                     duration=1000.0 / fps, loop=0)

  save_animation.sbd_plugin_fix = True
  visualize_util.save_animation = save_animation


# --- downstream logistic regression on small training sets -------------------


def _skipping_unfittable_sizes(compute_loss):
  """dlib's downstream `_compute_loss`, NaN where the predictor cannot fit."""
  import logging  # pylint: disable=g-import-not-at-top

  def _compute_loss(x_train, y_train, x_test, y_test, predictor_fn):
    try:
      return compute_loss(x_train, y_train, x_test, y_test, predictor_fn)
    except ValueError as e:
      if "inhomogeneous" not in str(e):
        raise
      logging.warning(
          "Downstream task with %d training points: %s cannot be fitted on "
          "this stack (a cross-validation fold lacks some classes); its "
          "accuracies are NaN.", x_train.shape[0], predictor_fn)
      nan = [float("nan")] * y_train.shape[0]
      return nan, list(nan)

  _compute_loss.sbd_plugin_fix = True
  _compute_loss.__wrapped__ = compute_loss
  return _compute_loss


def _dropping_nan_scores(compute_fn):
  """compute_downstream_task without the NaN scores of unfittable sizes.

  dlib writes results with simplejson's allow_nan=False: a NaN would fail the
  whole metric. A missing key is NaN in aggregated results.
  """

  def compute(*args, **kwargs):
    scores = compute_fn(*args, **kwargs)
    return {k: v for k, v in scores.items()
            if not (isinstance(v, float) and np.isnan(v))}

  return compute


def _install_downstream_small_sizes_fix():
  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import downstream_task
  from sbd_plugin.dlib_bridge import gin_wrappers
  # pylint: enable=g-import-not-at-top
  if not getattr(downstream_task._compute_loss, "sbd_plugin_fix", False):  # pylint: disable=protected-access
    downstream_task._compute_loss = _skipping_unfittable_sizes(  # pylint: disable=protected-access
        downstream_task._compute_loss)  # pylint: disable=protected-access
  gin_wrappers.wrap_inner(downstream_task.compute_downstream_task,
                          _dropping_nan_scores, "sbd_drops_nan")


# Applied in this order, before the plugin hooks (see `dlib_bridge.activate`).
FIXES = (
    FixInfo("tf_contrib", ["methods/unsupervised/train.py",
                           "methods/unsupervised/vae.py",
                           "utils/convolute_hub.py",
                           "evaluation/abstract_reasoning/*.py"],
            "tf.contrib was removed in TF 2.0 and tf.estimator in TF 2.16: "
            "TPUEstimator & co. come from the plugin's session-based "
            "stand-in (estimator_free), the same bits as the Estimator",
            _install_tf_contrib_shim),
    FixInfo("graph_mode", ["every module using tf.Session / tf.placeholder",
                           "and the shipped *_test.py modules"],
            "TF 2.x runs eagerly by default; dlib 1.5 is TF1 graph-mode code",
            _install_graph_mode),
    FixInfo("gin_keywords", ["67 @gin.configurable(..., whitelist/blacklist)"],
            "gin-config 0.5 only accepts allowlist/denylist; 0.4 does not "
            "import on Python >= 3.10", _install_gin_keyword_shim),
    FixInfo("save_animation", ["visualize/visualize_util.py"],
            "current imageio/Pillow reject float frames and the fps keyword",
            _install_save_animation_fix),
)

# Wraps whatever `_compute_loss` is installed, so it is applied after
# parallel_metrics replaces it (see `dlib_bridge.FIXES`).
METRIC_FIXES = (
    FixInfo("downstream_small_sizes", ["evaluation/metrics/downstream_task.py"],
            "LogisticRegressionCV (scikit-learn 1.5, numpy 1.26) raises when "
            "a CV fold lacks some classes, as with dlib's 10- and 100-point "
            "training sets: those sizes become NaN, the others are computed",
            _install_downstream_small_sizes_fix),
)
