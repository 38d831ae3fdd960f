"""Spatial Broadcast decoder and the paper's networks: shapes, conventions, sizes."""
import re

import gin
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import sbd_plugin  # pylint: disable=unused-import
from sbd_plugin import architectures
from disentanglement_lib.methods.shared import architectures as dlib_arch


def _build(fn, batch=3, num_latent=10, **kwargs):
  """Builds fn in a fresh graph; returns (output values, #parameters)."""
  with tf.Graph().as_default():
    tf.set_random_seed(0)
    z = tf.constant(np.random.RandomState(0).randn(batch, num_latent),
                    tf.float32)
    out = fn(z, **kwargs)
    num_params = sum(int(np.prod(v.shape)) for v in tf.trainable_variables())
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      return sess.run(out), num_params


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_spatial_broadcast_decoder_returns_batch_plus_output_shape(channels):
  out, _ = _build(architectures.spatial_broadcast_decoder,
                  output_shape=[64, 64, channels])
  assert out.shape == (3, 64, 64, channels)


@pytest.mark.parametrize("kernel_size,num_layers", [(3, 4), (4, 2), (5, 3)])
def test_valid_padding_variant_broadcasts_to_larger_grid(kernel_size,
                                                         num_layers):
  out, _ = _build(architectures.spatial_broadcast_decoder,
                  output_shape=[32, 48, 3], padding="VALID",
                  kernel_size=kernel_size, output_kernel_size=1,
                  num_layers=num_layers)
  assert out.shape == (3, 32, 48, 3)
  assert architectures.broadcast_grid_size(
      32, num_layers, kernel_size, 1, "VALID") == 32 + num_layers * (
          kernel_size - 1)


def test_decoders_return_unbounded_logits():
  # dlib's losses apply the sigmoid themselves: a decoder must not.
  for fn in (architectures.spatial_broadcast_decoder,
             architectures.paper_deconv_decoder):
    out, _ = _build(fn, output_shape=[64, 64, 3])
    assert out.min() < 0.0, fn.__name__


def test_coordinate_channels_orientation():
  coords = architectures.coordinate_channels(4, 6)
  x, y = coords[..., 0], coords[..., 1]
  np.testing.assert_allclose(x[:, 0], -1.0)   # left column
  np.testing.assert_allclose(x[:, -1], 1.0)   # right column
  np.testing.assert_allclose(y[0, :], -1.0)   # top row
  np.testing.assert_allclose(y[-1, :], 1.0)   # bottom row
  assert np.all(np.diff(x, axis=1) > 0) and np.all(np.diff(x, axis=0) == 0)
  assert np.all(np.diff(y, axis=0) > 0) and np.all(np.diff(y, axis=1) == 0)


def test_broadcast_channel_order_is_z_then_x_then_y():
  z = np.arange(6, dtype=np.float32).reshape(2, 3) + 10.0
  with tf.Graph().as_default(), tf.Session() as sess:
    grid = sess.run(architectures.spatial_broadcast(tf.constant(z), 5, 7,
                                                    (-2.0, 2.0)))
  assert grid.shape == (2, 5, 7, 5)
  np.testing.assert_array_equal(grid[:, 2, 3, :3], z)  # tiled latents
  np.testing.assert_allclose(grid[0, :, :, 3],
                             architectures.coordinate_channels(5, 7, (-2, 2))
                             [..., 0])
  assert grid[0, 0, 0, 3] == -2.0 and grid[0, 0, -1, 3] == 2.0  # x: width
  assert grid[0, 0, 0, 4] == -2.0 and grid[0, -1, 0, 4] == 2.0  # y: height


def test_parameter_counts_match_hand_computation():
  # SBD, paper defaults, k=10, RGB: conv(12->64, 4x4), conv(64->64, 4x4),
  # conv(64->3, 4x4), each with biases.
  sbd = (4 * 4 * 12 * 64 + 64) + (4 * 4 * 64 * 64 + 64) + (4 * 4 * 64 * 3 + 3)
  _, n = _build(architectures.spatial_broadcast_decoder,
                output_shape=[64, 64, 3])
  assert n == sbd == 81027
  # 3x3 re-implementation variant with 1x1 output: 3*3*12*64+64 + ...
  _, n = _build(architectures.spatial_broadcast_decoder,
                output_shape=[64, 64, 3], kernel_size=3, output_kernel_size=1)
  assert n == (9 * 12 * 64 + 64) + (9 * 64 * 64 + 64) + (64 * 3 + 3)
  # Paper DeConv: dense 10->256, 4 x deconv(64, 4x4), deconv(64->3, 4x4).
  deconv = (10 * 256 + 256) + 4 * (16 * 64 * 64 + 64) + (16 * 64 * 3 + 3)
  _, n = _build(architectures.paper_deconv_decoder, output_shape=[64, 64, 3])
  assert n == deconv == 268291


def test_paper_encoder_shapes_and_parameter_count():
  with tf.Graph().as_default():
    x = tf.zeros([2, 64, 64, 3])
    means, log_var = architectures.paper_conv_encoder(x, num_latent=10)
    n = sum(int(np.prod(v.shape)) for v in tf.trainable_variables())
  assert means.shape.as_list() == [2, 10] and log_var.shape.as_list() == [2, 10]
  convs = (16 * 3 * 64 + 64) + 3 * (16 * 64 * 64 + 64)
  assert n == convs + (4 * 4 * 64 * 256 + 256) + (256 * 20 + 20) == 467476


def test_paper_deconv_rejects_non_power_of_two_images():
  with pytest.raises(ValueError, match="power-of-two"):
    _build(architectures.paper_deconv_decoder, output_shape=[48, 64, 3])


@pytest.mark.parametrize("fn,kwargs,message", [
    (architectures.spatial_broadcast_decoder, dict(num_layers=0),
     "spatial_broadcast_decoder.num_layers must be a whole number >= 1, got 0"),
    (architectures.spatial_broadcast_decoder, dict(num_layers=-1),
     "spatial_broadcast_decoder.num_layers must be a whole number >= 1"),
    (architectures.spatial_broadcast_decoder, dict(num_channels=0),
     "spatial_broadcast_decoder.num_channels must be a whole number >= 1"),
    (architectures.spatial_broadcast_decoder, dict(kernel_size=0),
     "spatial_broadcast_decoder.kernel_size must be a whole number >= 1"),
    (architectures.spatial_broadcast_decoder, dict(output_kernel_size=2.5),
     "spatial_broadcast_decoder.output_kernel_size must be a whole number"),
    (architectures.paper_deconv_decoder, dict(kernel_size=0),
     "paper_deconv_decoder.kernel_size must be a whole number >= 1"),
])
def test_invalid_architecture_parameters_name_the_binding(fn, kwargs,
                                                          message):
  with pytest.raises(ValueError, match=re.escape(message)):
    _build(fn, output_shape=[64, 64, 3], **kwargs)


def test_invalid_encoder_parameters_name_the_binding():
  with tf.Graph().as_default():
    images = tf.zeros([2, 64, 64, 3])
    with pytest.raises(ValueError, match=re.escape(
        "paper_conv_encoder.num_layers must be a whole number >= 1, got 0")):
      architectures.paper_conv_encoder(images, 10, num_layers=0)


@pytest.mark.parametrize("name,scope_var", [
    ("spatial_broadcast_decoder", "decoder/sb_conv1/kernel"),
    ("paper_deconv_decoder", "decoder/pd_dense/kernel")])
def test_decoders_are_bindable_in_dlib_configs(name, scope_var):
  gin.clear_config()
  gin.parse_config(["decoder.decoder_fn = @%s" % name,
                    "spatial_broadcast_decoder.kernel_size = 3"])
  try:
    with tf.Graph().as_default():
      out = dlib_arch.make_decoder(tf.zeros([2, 10]), [64, 64, 1])
      names = [v.op.name for v in tf.trainable_variables()]
    assert out.shape.as_list() == [2, 64, 64, 1]
    assert scope_var in names
  finally:
    gin.clear_config()


def test_paper_encoder_is_bindable_in_dlib_configs():
  gin.clear_config()
  gin.parse_config(["encoder.encoder_fn = @paper_conv_encoder",
                    "encoder.num_latent = 7"])
  try:
    with tf.Graph().as_default():
      means, _ = dlib_arch.make_gaussian_encoder(tf.zeros([2, 64, 64, 3]))
    assert means.shape.as_list() == [2, 7]
  finally:
    gin.clear_config()
