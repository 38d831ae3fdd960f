"""sbd_plugin.dlib_bridge: activation, dlib fixes, dataset names, versions."""
import os
import re
import sys

import gin
import imageio
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import sbd_plugin
from sbd_plugin import dlib_bridge
from sbd_plugin import versions
from sbd_plugin.datasets import registry
from disentanglement_lib.data.ground_truth import dummy_data
from disentanglement_lib.data.ground_truth import named_data
from disentanglement_lib.visualize import visualize_util
from tests.helpers import REPO
from tests.helpers import run_tool


def _python(code, env=None, check=True):
  return run_tool([sys.executable, "-c", code], env=env, check=check,
                  timeout=300)


def test_hook_does_not_import_tensorflow_into_unrelated_processes():
  out = _python("import sys, json; print('tensorflow' in sys.modules, "
                "any(type(f).__name__ == '_Finder' for f in sys.meta_path))")
  assert out.stdout.split() == ["False", "True"]


def test_importing_dlib_activates_every_fix_in_a_fresh_process():
  out = _python("import sys, disentanglement_lib.methods.unsupervised.train; "
                "b = sys.modules['sbd_plugin.dlib_bridge']; "
                "print(','.join(b._ACTIVE))")
  assert out.stdout.strip().split(",") == [f.name for f in dlib_bridge.FIXES]


def test_without_the_hook_stock_dlib_fails_on_this_stack():
  # Proves the layer is what makes dlib run (and that the opt-out works).
  out = _python("import disentanglement_lib.methods.unsupervised.train",
                env={"SBD_PLUGIN_DISABLE": "1"}, check=False)
  assert out.returncode != 0
  # TF 2.15: tf.contrib, gin's keywords; TF 2.16+: tf.estimator (gin.tf).
  assert any(word in out.stderr for word in ("contrib", "whitelist",
                                             "estimator"))


def test_every_fix_names_the_dlib_file_and_reason():
  for fix in dlib_bridge.FIXES:
    assert fix.dlib_files and len(fix.why) > 20, fix.name


def test_unknown_dataset_name_lists_valid_names():
  gin.clear_config()
  gin.bind_parameter("dataset.name", "colored_sprite")
  try:
    with pytest.raises(ValueError) as err:
      named_data.get_named_ground_truth_data()
  finally:
    gin.clear_config()
  message = str(err.value)
  assert "colored_sprite'" in message
  for name in ("dsprites_full", "dummy_data", "colored_sprites",
               "object_in_room", "small_colored_sprites"):
    assert name in message


def test_dataset_table_refuses_taken_names_and_imports_on_use():
  entries = [("a", "json:dumps")]
  assert registry.Registry(["b"], entries).load("a").__name__ == "dumps"
  for taken, entries in ((["b"], entries + [("a", "json:loads")]),
                         (["a"], entries)):
    with pytest.raises(ValueError, match="registered twice"):
      registry.Registry(taken, entries)
  with pytest.raises(ValueError, match="module:attribute"):
    registry.Registry([], [("c", "json.dumps")])
  assert not set(registry.PLUGIN_DATASETS) & set(registry.STOCK_DATASETS)


def test_stock_dataset_names_still_resolve_and_are_recorded():
  gin.clear_config()
  gin.bind_parameter("dataset.name", "dummy_data")
  try:
    data = named_data.get_named_ground_truth_data()
    operative = gin.operative_config_str()
  finally:
    gin.clear_config()
  assert isinstance(data, dummy_data.DummyData)
  # postprocess/evaluate read `dataset.name` back from this for "auto".
  assert re.search(r"dataset.name = 'dummy_data'", operative)


def test_tf_contrib_shim_provides_what_dlib_uses(tmp_path):
  from tensorflow.contrib import framework  # pylint: disable=g-import-not-at-top
  from tensorflow.contrib import tpu  # pylint: disable=g-import-not-at-top
  from sbd_plugin.dlib_bridge import estimator_free  # pylint: disable=g-import-not-at-top
  # The plugin's Estimator-free stand-in, on every stack
  # (tests/test_estimator_free.py: the Estimator's bits).
  assert tpu.TPUEstimator is estimator_free.TPUEstimator
  path = str(tmp_path / "ckpt")
  with tf.Graph().as_default():
    v = tf.Variable([1.0, 2.0], name="v")
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      tf.train.Saver([v]).save(sess, path)
  with tf.Graph().as_default():
    w = tf.Variable([0.0, 0.0], name="w")
    init_fn = framework.assign_from_checkpoint_fn(path, {"v": w})
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      init_fn(sess)
      np.testing.assert_array_equal(sess.run(w), [1.0, 2.0])


def test_gin_accepts_dlibs_old_keyword_names():
  @gin.configurable("sbd_test_old_keywords", blacklist=["x"])
  def f(x, y=1):
    return x, y

  with pytest.raises(ValueError):
    gin.bind_parameter("sbd_test_old_keywords.x", 3)  # denylisted
  gin.bind_parameter("sbd_test_old_keywords.y", 5)
  try:
    assert f(0) == (0, 5)
  finally:
    gin.clear_config()


def test_save_animation_writes_a_readable_gif_from_float_frames(tmp_path):
  frames = [np.random.RandomState(i).rand(3, 8, 8, 3) for i in range(2)]
  path = str(tmp_path / "anim.gif")
  visualize_util.save_animation(np.array(frames), path, fps=5)
  read = imageio.mimread(path)
  assert len(read) == 3
  assert read[0].dtype == np.uint8 and read[0].shape[-1] in (3, 4)


def test_lock_file_agrees_with_numeric_pins():
  with open(os.path.join(REPO, versions.LOCK_FILE)) as f:
    lock = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", f.read(), re.M))
  lock = {k.lower(): v for k, v in lock.items()}
  for name, pin in versions.NUMERIC_PINS.items():
    assert lock[name] == pin, name


def test_recorded_versions_name_the_running_stack():
  recorded = versions.library_versions()
  assert recorded["tensorflow"] == tf.__version__
  assert recorded["disentanglement-lib"] == versions.DLIB_VERSION
  assert recorded["sbd_plugin"] == sbd_plugin.__version__
  assert versions.check_stack() == []  # the test env is the pinned stack


def test_a_checkpoints_input_position_is_recorded_before_it_is_saved(
    tmp_path):
  """A kill between saving a checkpoint and recording its input position
  would resume a FactorVAE (2 steps per batch) at the wrong batch, so the
  record is written first."""
  from sbd_plugin.dlib_bridge import resumable_train  # pylint: disable=g-import-not-at-top
  counter = resumable_train._BatchCounter(start=0)  # pylint: disable=protected-access
  for _ in range(4):
    counter.after_run(None, None)
  recorder = resumable_train._PositionRecorder(str(tmp_path), counter)  # pylint: disable=protected-access
  recorder.before_save(None, 8)  # FactorVAE: 4 batches, 8 steps.
  assert resumable_train.batches_consumed(str(tmp_path), 8) == 4
