"""What adapts dlib 1.5 to the current stack: Python 3.12/3.13, TF 2.16+.

On top of `stack_fixes` (which every stack needs). Each fix is gated on the
stack it is for, so on the 3.11 / TF 2.15 stack none of them does anything:

- TensorFlow 2.16+ has no `tf.estimator`. dlib's model functions compare
  `mode` with `tf.estimator.ModeKeys` (methods/unsupervised/vae.py), gin
  0.5's `gin.tf` (imported by dlib's train.py) subclasses
  `tf.estimator.SessionRunHook`, and tensorflow-hub 0.15 (the last with the
  TF1 `hub.Module` API dlib exports and reads models with) subclasses
  `tf.compat.v1.estimator.Exporter` at import. A namespace with these names
  stands in; dlib's TPUEstimator comes from `estimator_free`.
- NumPy 2 removed `np.float_`, which dlib's result writer tests against.
- Keras 3 (TF 2.16+'s default) has no graph-mode `tf.compat.v1.layers`:
  `_sbd_plugin_hook.py` sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads
  when tf-keras is installed, so they come from tf-keras.
- `distutils` (dlib's utils/results.py) is gone from Python 3.12; setuptools
  (pinned below 81 in the lock) provides it.
"""
import sys
import types

import numpy as np

from sbd_plugin.dlib_bridge import stack_fixes


def needs_current_stack_fixes():
  """True on TensorFlow 2.16+ (no tf.estimator), the Python 3.12+ stack."""
  return not stack_fixes.has_tf_estimator()


# --- tf.estimator is gone ----------------------------------------------------


class Exporter(object):
  """Base class of tensorflow_hub's LatestModuleExporter (never used)."""

  def export(self, *args, **kwargs):
    raise NotImplementedError("tf.estimator exporters need TensorFlow <= 2.15.")


def estimator_namespace():
  """A `tf.estimator` with the names dlib, gin.tf and tensorflow_hub read.

  Returns:
    A module with ModeKeys, SessionRunHook, Exporter and `tpu`
    (TPUEstimator & co. from `estimator_free`).
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from sbd_plugin.dlib_bridge import estimator_free  # pylint: disable=g-import-not-at-top
  namespace = types.ModuleType("tensorflow.compat.v1.estimator")
  namespace.__doc__ = ("sbd_plugin's stand-in for the parts of tf.estimator "
                       "that dlib, gin.tf and tensorflow_hub 0.15 use.")
  namespace.ModeKeys = estimator_free.ModeKeys
  namespace.SessionRunHook = tf.train.SessionRunHook
  namespace.SessionRunArgs = tf.train.SessionRunArgs
  namespace.Exporter = Exporter
  namespace.tpu = estimator_free
  return namespace


def install_estimator_namespace():
  """Installs the stand-in `tf.estimator` (TF 2.16+ only; idempotent).

  Also called by the start-up hook when `gin.tf` or `tensorflow_hub` is
  imported before dlib: both read these names while they load.
  """
  if not needs_current_stack_fixes():
    return
  # pylint: disable=g-import-not-at-top
  import tensorflow
  import tensorflow.compat.v1 as tf_v1
  # pylint: enable=g-import-not-at-top
  if getattr(tf_v1, "estimator", None) is not None and getattr(
      tf_v1.estimator, "Exporter", None) is Exporter:
    return
  namespace = estimator_namespace()
  for module in (tensorflow, tf_v1, tensorflow.compat.v2):
    setattr(module, "estimator", namespace)
  sys.modules["tensorflow.compat.v1.estimator"] = namespace
  sys.modules["tensorflow.estimator"] = namespace


# --- NumPy 2 -------------------------------------------------------------------


class _NumpyWithFloatUnderscore(types.ModuleType):
  """numpy as dlib's results.py sees it: with NumPy 1's `float_`."""

  float_ = np.float64

  def __getattr__(self, name):
    return getattr(np, name)


def _install_numpy2_float_fix():
  if hasattr(np, "float_"):  # NumPy 1.x
    return
  from disentanglement_lib.utils import results  # pylint: disable=g-import-not-at-top
  if not isinstance(results.np, _NumpyWithFloatUnderscore):
    results.np = _NumpyWithFloatUnderscore("numpy")


# Before every other fix: dlib modules they import read tf.estimator, and
# import gin.tf and tensorflow_hub (see `dlib_bridge.FIXES`).
FIRST = (
    stack_fixes.FixInfo(
        "estimator_namespace",
        ["methods/unsupervised/vae.py (tf.estimator.ModeKeys)",
         "methods/unsupervised/train.py (imports gin.tf: SessionRunHook)",
         "every module importing tensorflow_hub 0.15 (Exporter)"],
        "TensorFlow 2.16+ ships no tf.estimator; a namespace with the names "
        "read stands in (TF 2.16+ only)", install_estimator_namespace),
)

# After stack_fixes.FIXES: dlib's modules import only once those are in place.
FIXES = (
    stack_fixes.FixInfo(
        "numpy2_float_", ["utils/results.py"],
        "NumPy 2 removed np.float_, which dlib's JSON encoder tests against "
        "(NumPy 2 only)", _install_numpy2_float_fix),
)
