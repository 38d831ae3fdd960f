"""The plugin's Estimator-free trainer gives the Estimator's bits.

dlib trains through tf.estimator's TPUEstimator, which TensorFlow 2.16+ no
longer ships; `sbd_plugin.dlib_bridge.estimator_free` stands in for it on
every stack. Where the real Estimator still exists (TF 2.15),
SBD_PLUGIN_TRAINER=estimator selects it, and `dlib_train` must give
bit-identical checkpoints and train results either way.
"""
import os

import numpy as np
import pytest

from tests import helpers
from tests.helpers import run_tool

pytestmark = pytest.mark.skipif(
    not __import__("sbd_plugin.dlib_bridge.stack_fixes",
                   fromlist=["x"]).has_tf_estimator(),
    reason="needs tf.estimator (TensorFlow <= 2.15) to compare with")

TINY = ["model.training_steps = 12", "model.eval_steps = 2",
        "model.batch_size = 8", "dataset.name = 'colored_sprites'"]


def _train(model_dir, config, trainer):
  bindings = [a for b in TINY for a in ("--gin_bindings", b)]
  return run_tool(["dlib_train", "--model_dir=" + model_dir, "--gin_config",
                   "gin_configs/%s.gin" % config] + bindings,
                  env={"SBD_PLUGIN_TRAINER": trainer})


@pytest.mark.parametrize("config", ["broadcast_factorvae", "deconv_vae"])
def test_dlib_train_without_the_estimator_gives_the_estimators_bits(
    tmp_path, config):
  dirs = {}
  for trainer in ("estimator", "session"):
    dirs[trainer] = str(tmp_path / trainer)
    _train(dirs[trainer], config, trainer)
  a = helpers.checkpoint_variables(dirs["estimator"])
  b = helpers.checkpoint_variables(dirs["session"])
  assert sorted(a) == sorted(b)
  differ = [name for name in a if not np.array_equal(a[name], b[name])]
  assert not differ, differ
  results = helpers.train_results(dirs["estimator"])
  assert results == helpers.train_results(dirs["session"])
  assert {"loss", "reconstruction_loss", "kl_loss", "global_step"} <= set(
      results)
  # The TF-Hub export dlib's later steps read is there too.
  assert os.path.exists(os.path.join(dirs["session"], "tfhub",
                                     "saved_model.pb"))


def test_unknown_trainer_choice_is_an_error_naming_the_variable(tmp_path):
  proc = run_tool(["dlib_train", "--model_dir=" + str(tmp_path / "m"),
                   "--gin_config", "gin_configs/deconv_vae.gin"],
                  env={"SBD_PLUGIN_TRAINER": "tpu"}, check=False)
  assert proc.returncode != 0
  assert "SBD_PLUGIN_TRAINER must be 'session' (default) or 'estimator'" in (
      proc.stderr)
