"""Activates sbd_plugin (`sbd_plugin.dlib_bridge`) when disentanglement_lib loads.

Installed as `sbd_plugin.pth` in site-packages, so this module runs at every
interpreter start-up. It only adds a light import finder: nothing is imported
(in particular not TensorFlow) until some code imports `disentanglement_lib`.
Set SBD_PLUGIN_DISABLE=1 to run dlib without the plugin.

It also turns TensorFlow's oneDNN CPU kernels on by default
(TF_ENABLE_ONEDNN_OPTS=1; TensorFlow 2.15 itself turns them on only on CPUs
with AVX-512 VNNI/BF16 or AMX). TensorFlow reads the variable once, when it
loads, so it must be set before anything imports TensorFlow: here. They make
the Spatial Broadcast step ~2x faster on AVX2 and stay bit-reproducible for a
given machine and thread count (docs/benchmarks.md, "Training settings";
docs/reproducibility.md). A value already set, e.g. TF_ENABLE_ONEDNN_OPTS=0,
is kept.

With tf-keras installed (the Python 3.12+ stack, TensorFlow 2.16+) it also
sets TF_USE_LEGACY_KERAS=1, for the same reason (read once, at load): dlib's
`tf.compat.v1.layers` need Keras 2 (tf-keras) in graph mode, and TensorFlow
2.16+ loads Keras 3 otherwise. The 3.11 stack has no tf-keras and is left
alone (TensorFlow 2.15 would try to import it). Without tensorflow-estimator
(TensorFlow 2.16+) a first import of `gin.tf` or `tensorflow_hub` also installs
the plugin's `tf.estimator` names before they load: both read them at import.

With SBD_PORTABLE=1 it first sets portable mode's variables
(`sbd_plugin.portable`: numpy's SIMD dispatch, OpenBLAS's kernel and threads,
oneDNN off and capped at AVX, TensorFlow's threads, ...), overriding values
already set, TF_ENABLE_ONEDNN_OPTS included: the libraries read them when
they load, which is after this.
"""
import importlib.abc
import os
import sys

_TARGET = "disentanglement_lib"
_ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
_LEGACY_KERAS = "TF_USE_LEGACY_KERAS"
# Packages that read tf.estimator's names at import (see _EstimatorUsersFinder).
_ESTIMATOR_USERS = ("gin.tf", "tensorflow_hub")


class _ActivatingLoader(importlib.abc.Loader):
  """Runs dlib's own package loader, then activates the plugin."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    # Hand the module back its real loader: pkg_resources (dlib's
    # utils/resources.py) only understands the standard loader types.
    module.__loader__ = self._loader
    module.__spec__.loader = self._loader
    self._loader.exec_module(module)
    import sbd_plugin.dlib_bridge  # pylint: disable=g-import-not-at-top
    sbd_plugin.dlib_bridge.activate()


class _EstimatorUsersFinder(importlib.abc.MetaPathFinder):
  """Before a first `gin.tf` or `tensorflow_hub`, installs `tf.estimator`.

  Only without tensorflow-estimator (TensorFlow 2.16+): both packages read
  its names while they load, so a script that imports either before dlib
  failed (`current_stack.install_estimator_namespace`).
  """

  def __init__(self):
    self._pending = set(_ESTIMATOR_USERS)

  def find_spec(self, fullname, path, target=None):
    if fullname not in self._pending:
      return None
    self._pending.discard(fullname)
    from sbd_plugin.dlib_bridge import current_stack  # pylint: disable=g-import-not-at-top
    current_stack.install_estimator_namespace()
    # The usual finders load the package now. This finder stays in
    # sys.meta_path: removing it while the import system walks it would
    # make it skip the next finder.
    return None


class _Finder(importlib.abc.MetaPathFinder):
  """Wraps the loader of the top-level `disentanglement_lib` package."""

  def find_spec(self, fullname, path, target=None):
    if fullname != _TARGET:
      return None
    sys.meta_path.remove(self)  # One shot: find the real spec without us.
    import importlib.util  # pylint: disable=g-import-not-at-top
    spec = importlib.util.find_spec(fullname)
    if spec is None or spec.loader is None:
      return None
    spec.loader = _ActivatingLoader(spec.loader)
    return spec


def _portable():
  """Applies portable mode (SBD_PORTABLE=1); a bad value is reported, not raised."""
  try:
    from sbd_plugin import portable  # pylint: disable=g-import-not-at-top
    if portable.enabled():
      portable.apply()
  except (ImportError, ValueError) as e:
    # Raising here would only print a traceback and go on without the mode.
    sys.stderr.write("sbd_plugin: portable mode NOT applied: %s\n" % e)


def install():
  """Adds the finder once, unless disabled or dlib is already imported."""
  if os.environ.get("SBD_PLUGIN_DISABLE") == "1":
    return
  if os.environ.get("SBD_PORTABLE", "").strip() not in ("", "0"):
    _portable()
  # Inherited by every worker and dlib command started from here.
  os.environ.setdefault(_ONEDNN, "1")
  if sys.version_info >= (3, 12):
    import importlib.util  # pylint: disable=g-import-not-at-top
    if importlib.util.find_spec("tf_keras") is not None:
      os.environ.setdefault(_LEGACY_KERAS, "1")
    if (importlib.util.find_spec("tensorflow_estimator") is None and
        not any(isinstance(f, _EstimatorUsersFinder) for f in sys.meta_path)):
      sys.meta_path.insert(0, _EstimatorUsersFinder())
  if _TARGET in sys.modules:
    return
  if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())


install()
