"""The scoring benchmark's two encoders compute one function (no timing here)."""
import os

import numpy as np

from evaluation.benchmark import scoring_speed


def test_encoder_flops_match_a_hand_computation():
  # Per image: 2 * out_h * out_w * k * k * c_in * c_out per conv, then dense.
  hand = 2 * (32 * 32 * 16 * 3 * 32 + 16 * 16 * 16 * 32 * 32 +
              8 * 8 * 16 * 32 * 64 + 4 * 4 * 16 * 64 * 64 +
              1024 * 256 + 256 * 10)
  assert scoring_speed.encoder_flops([64, 64, 3]) == hand


def test_onnx_and_tf_hub_encoders_agree(tmp_path):
  # pylint: disable=g-import-not-at-top
  # dlib first: on the current stack it installs the tf.estimator names
  # tensorflow-hub 0.15 imports (README, "Supported stacks").
  import disentanglement_lib  # pylint: disable=unused-import
  import tensorflow_hub as hub
  from sbd_plugin.scoring import onnx_model
  # pylint: enable=g-import-not-at-top
  shape = [64, 64, 3]
  params = scoring_speed.encoder_params(shape)
  path = scoring_speed.write_onnx(params, shape, str(tmp_path / "e.onnx"))
  hub_dir = scoring_speed.write_hub(params, shape, str(tmp_path / "hub"))
  images = np.random.RandomState(0).uniform(size=[16] + shape).astype(
      np.float32)
  ours = onnx_model.OnnxModel(path, shape)(images)
  with hub.eval_function_for_module(os.path.join(hub_dir, "tfhub")) as f:
    theirs = np.array(f(dict(images=images), signature="representation",
                        as_dict=True)["default"])
  assert ours.shape == theirs.shape == (16, scoring_speed.NUM_LATENT)
  # TF's SAME padding and NHWC flattening reproduced in the ONNX graph.
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
  assert np.abs(theirs).max() > 0.1  # not a trivially zero encoder
