"""The two locked stacks: Python 3.11 / TF 2.15 and Python 3.12-3.13 / TF 2.21.

Which stack a Python gets, that each lock pins what the plugin records, and,
on the current stack, that dlib's tf.estimator and NumPy 1 names are there.
"""
import os
import re
import sys

import pytest

from sbd_plugin import versions
from sbd_plugin.dlib_bridge import stack_fixes
from tests.helpers import REPO
from tests.helpers import run_tool


def _lock(path):
  with open(os.path.join(REPO, path)) as f:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", f.read(), re.M))
  return {k.lower(): v for k, v in pins.items()}


@pytest.mark.parametrize("python,stack", [
    ((3, 11), "py311-tf2.15"), ((3, 12), "py312-tf2.21"),
    ((3, 13), "py312-tf2.21")])
def test_the_python_version_picks_the_stack(python, stack):
  assert versions.stack_for_python(python) == stack


@pytest.mark.parametrize("stack", sorted(versions.STACKS))
def test_each_lock_pins_exactly_its_stacks_numeric_pins(stack):
  lock = _lock(versions.STACKS[stack]["lock"])
  for name, pin in versions.STACKS[stack]["pins"].items():
    assert lock[name] == pin, (stack, name)
  for name, series in versions.STACKS[stack]["series"].items():
    assert lock[name].startswith(series), (stack, name)


def test_every_result_records_the_running_stack():
  recorded = versions.library_versions()
  assert recorded["stack"] == versions.stack_for_python(sys.version_info)
  assert recorded["python"].startswith("%d.%d" % sys.version_info[:2])


current_stack_only = pytest.mark.skipif(
    stack_fixes.has_tf_estimator(),
    reason="TensorFlow <= 2.15 ships tf.estimator itself")


@current_stack_only
def test_dlib_sees_the_estimator_names_it_uses_on_the_current_stack():
  out = run_tool([sys.executable, "-c", "\n".join([
      # dlib first: its import installs the names (README, "Supported stacks").
      "from disentanglement_lib.methods.unsupervised import train, vae",
      "import os, gin.tf, tensorflow_hub as hub",  # gin.tf subclasses tf.estimator.SessionRunHook
      "import tensorflow.compat.v1 as tf",
      "from disentanglement_lib.utils import results",
      "print(tf.estimator.ModeKeys.TRAIN, results.np.float_.__name__,",
      "      hub.create_module_spec.__name__, os.environ['TF_USE_LEGACY_KERAS'])",
  ])]).stdout.split()
  assert out[-4:] == ["train", "float64", "create_module_spec", "1"]


@current_stack_only
@pytest.mark.parametrize("first", ["tensorflow_hub", "gin.tf"])
def test_gin_tf_or_tensorflow_hub_imported_before_dlib_loads(first):
  # Both read tf.estimator's names while they load: a script that imports
  # one of them first failed (ImportError, AttributeError) before the hook
  # installed the names for them.
  out = run_tool([sys.executable, "-c", "\n".join([
      "import importlib, sys",
      "importlib.import_module(%r)" % first,
      "assert 'disentanglement_lib' not in sys.modules",
      "import gin.tf, tensorflow_hub as hub",
      "from disentanglement_lib.methods.unsupervised import train",
      "from sbd_plugin import dlib_bridge",
      "assert dlib_bridge._ACTIVE == [f.name for f in dlib_bridge.FIXES]",
      "print(hub.create_module_spec.__name__)",
  ])]).stdout.split()
  assert out[-1:] == ["create_module_spec"]


@current_stack_only
def test_requesting_the_estimator_where_there_is_none_says_so():
  proc = run_tool([sys.executable, "-c",
                   "import disentanglement_lib.methods.unsupervised.train"],
                  env={"SBD_PLUGIN_TRAINER": "estimator"}, check=False)
  assert proc.returncode != 0
  assert "SBD_PLUGIN_TRAINER=estimator needs tf.estimator" in proc.stderr
