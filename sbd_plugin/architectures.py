"""Spatial Broadcast decoder and the paper's encoder/decoder, for dlib.

Watters et al. (2019), "Spatial Broadcast Decoder: A Simple Architecture for
Learning Disentangled Representations in VAEs", arXiv:1901.07017, appendix A.

Every function here has dlib's architecture signature and is a gin
configurable, so a dlib config selects it with e.g.
`decoder.decoder_fn = @spatial_broadcast_decoder`. Decoders return logits
(pre-activations) of shape [batch_size] + output_shape: dlib's reconstruction
losses apply the output activation themselves.

Coordinate convention (pinned by tests): the broadcast tensor's channels are
[z_1..z_k, x, y] in NHWC; x varies along the width axis (-1 in the left
column, +1 in the right column), y along the height axis (-1 in the top row,
+1 in the bottom row).
"""
import gin
import numpy as np
import tensorflow.compat.v1 as tf


def coordinate_channels(height, width, coordinate_range=(-1.0, 1.0)):
  """Returns the fixed x and y coordinate channels of the broadcast grid.

  Args:
    height: Integer, number of rows of the grid.
    width: Integer, number of columns of the grid.
    coordinate_range: Pair (low, high) spanned by both coordinates.

  Returns:
    float32 numpy array of shape [height, width, 2]: channel 0 is x (varies
    along the width axis), channel 1 is y (varies along the height axis).
  """
  low, high = coordinate_range
  xs = np.linspace(low, high, width, dtype=np.float32)
  ys = np.linspace(low, high, height, dtype=np.float32)
  x_grid, y_grid = np.meshgrid(xs, ys)  # "xy" indexing: [height, width].
  return np.stack([x_grid, y_grid], axis=-1)


def check_positive(configurable, **values):
  """Raises ValueError naming the gin parameter that is not a whole number >= 1.

  Args:
    configurable: Gin name of the architecture (for the message).
    **values: Parameter name -> value.
  """
  for name, value in values.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(
          "%s.%s must be a whole number >= 1, got %r: fix the binding in "
          "your gin config or study file." % (configurable, name, value))


def broadcast_grid_size(output_size, num_layers, kernel_size,
                        output_kernel_size, padding):
  """Returns the side of the broadcast grid that yields `output_size`.

  Args:
    output_size: Integer, the decoded image side.
    num_layers: Number of hidden convolutions.
    kernel_size: Kernel side of the hidden convolutions.
    output_kernel_size: Kernel side of the output convolution.
    padding: "SAME" (grid = image) or "VALID" (the grid is enlarged by what
      the unpadded convolutions trim, as in MONet's decoder).

  Returns:
    Integer grid side.
  """
  if padding == "SAME":
    return output_size
  if padding == "VALID":
    return output_size + num_layers * (kernel_size - 1) + output_kernel_size - 1
  raise ValueError("padding must be 'SAME' or 'VALID', got %r." % (padding,))


def spatial_broadcast(latent_tensor, height, width,
                      coordinate_range=(-1.0, 1.0)):
  """Tiles the latent vector over a grid and appends coordinate channels.

  Args:
    latent_tensor: Tensor of shape [batch_size, num_latent].
    height: Integer, grid rows.
    width: Integer, grid columns.
    coordinate_range: Pair (low, high) spanned by the coordinate channels.

  Returns:
    Tensor of shape [batch_size, height, width, num_latent + 2], channels
    ordered [z, x, y].
  """
  batch_size = tf.shape(latent_tensor)[0]
  num_latent = latent_tensor.get_shape().as_list()[-1]
  tiled = tf.tile(tf.reshape(latent_tensor, [-1, 1, 1, num_latent]),
                  [1, height, width, 1])
  coords = tf.constant(coordinate_channels(height, width, coordinate_range))
  coords = tf.tile(coords[tf.newaxis], [batch_size, 1, 1, 1])
  return tf.concat([tiled, tf.cast(coords, tiled.dtype)], axis=-1)


@gin.configurable("spatial_broadcast_decoder",
                  allowlist=["num_layers", "num_channels", "kernel_size",
                             "output_kernel_size", "padding",
                             "coordinate_range"])
def spatial_broadcast_decoder(latent_tensor, output_shape, is_training=True,
                              num_layers=2, num_channels=64, kernel_size=4,
                              output_kernel_size=4, padding="SAME",
                              coordinate_range=(-1.0, 1.0)):
  """Spatial Broadcast decoder (Watters et al. 2019, appendix A.1).

  Defaults follow the paper's table: 2 hidden layers of 64 channels with 4x4
  kernels, stride 1, ReLU, then a stride-1 convolution to the image channels.
  Re-implementations often use 3x3 kernels; MONet's variant uses
  padding="VALID" on a correspondingly enlarged grid.

  Args:
    latent_tensor: Tensor of shape [batch_size, num_latent] to decode.
    output_shape: Shape of the data, [height, width, channels].
    is_training: Whether the graph is built for training (unused).
    num_layers: Number of hidden convolutions.
    num_channels: Channels of each hidden convolution.
    kernel_size: Kernel side of the hidden convolutions.
    output_kernel_size: Kernel side of the output convolution.
    padding: "SAME", or "VALID" to broadcast onto an enlarged grid.
    coordinate_range: Pair (low, high) spanned by the x and y channels.

  Returns:
    Tensor of logits with shape [batch_size] + output_shape.
  """
  del is_training
  check_positive("spatial_broadcast_decoder", num_layers=num_layers,
                 num_channels=num_channels, kernel_size=kernel_size,
                 output_kernel_size=output_kernel_size)
  height, width, channels = [int(d) for d in output_shape]
  grid_h = broadcast_grid_size(height, num_layers, kernel_size,
                               output_kernel_size, padding)
  grid_w = broadcast_grid_size(width, num_layers, kernel_size,
                               output_kernel_size, padding)
  net = spatial_broadcast(latent_tensor, grid_h, grid_w, coordinate_range)
  for i in range(num_layers):
    net = tf.layers.conv2d(net, filters=num_channels, kernel_size=kernel_size,
                           strides=1, padding=padding.lower(),
                           activation=tf.nn.relu, name="sb_conv%d" % (i + 1))
  logits = tf.layers.conv2d(net, filters=channels,
                            kernel_size=output_kernel_size, strides=1,
                            padding=padding.lower(), activation=None,
                            name="sb_output")
  return tf.reshape(logits, [-1] + [height, width, channels])


@gin.configurable("paper_conv_encoder",
                  allowlist=["num_layers", "num_channels", "kernel_size",
                             "hidden_units"])
def paper_conv_encoder(input_tensor, num_latent, is_training=True,
                       num_layers=4, num_channels=64, kernel_size=4,
                       hidden_units=256):
  """The paper's encoder (appendix A.1): 4 strided convolutions and an MLP.

  4 x [Conv 64, 4x4, stride 2, SAME, ReLU] (64->32->16->8->4), flatten,
  Dense 256 ReLU, Dense 2k split into means and log-variances. (dlib's
  `conv_encoder` differs: 32/32/64/64 channels and 2x2 kernels at the end.)

  Args:
    input_tensor: Tensor of shape [batch_size, height, width, channels].
    num_latent: Number of latent variables.
    is_training: Whether the graph is built for training (unused).
    num_layers: Number of strided convolutions.
    num_channels: Channels of each convolution.
    kernel_size: Kernel side of each convolution.
    hidden_units: Width of the dense hidden layer.

  Returns:
    Tuple (means, log_var), each of shape [batch_size, num_latent].
  """
  del is_training
  check_positive("paper_conv_encoder", num_layers=num_layers,
                 num_channels=num_channels, kernel_size=kernel_size,
                 hidden_units=hidden_units)
  net = input_tensor
  for i in range(num_layers):
    net = tf.layers.conv2d(net, filters=num_channels, kernel_size=kernel_size,
                           strides=2, padding="same", activation=tf.nn.relu,
                           name="pe_conv%d" % (i + 1))
  net = tf.layers.flatten(net)
  net = tf.layers.dense(net, hidden_units, activation=tf.nn.relu,
                        name="pe_dense")
  params = tf.layers.dense(net, 2 * num_latent, activation=None,
                           name="pe_params")
  means, log_var = tf.split(params, 2, axis=1)
  return means, log_var


@gin.configurable("paper_deconv_decoder",
                  allowlist=["num_channels", "kernel_size", "hidden_units"])
def paper_deconv_decoder(latent_tensor, output_shape, is_training=True,
                         num_channels=64, kernel_size=4, hidden_units=256):
  """The paper's DeConv baseline (appendix A.1).

  Dense 256 ReLU, reshape to 2x2x64, transposed convolutions (64 channels,
  4x4, stride 2, ReLU) up to half the image side, then a transposed
  convolution to the image channels (stride 2, no activation). For 64x64
  images that is 4 hidden layers, as in the paper.

  Args:
    latent_tensor: Tensor of shape [batch_size, num_latent].
    output_shape: Shape of the data, [height, width, channels]; height and
      width must be equal powers of two of at least 4.
    is_training: Whether the graph is built for training (unused).
    num_channels: Channels of the hidden transposed convolutions.
    kernel_size: Kernel side of all transposed convolutions.
    hidden_units: Width of the dense layer; must equal 4 * num_channels.

  Returns:
    Tensor of logits with shape [batch_size] + output_shape.
  """
  del is_training
  check_positive("paper_deconv_decoder", num_channels=num_channels,
                 kernel_size=kernel_size, hidden_units=hidden_units)
  height, width, channels = [int(d) for d in output_shape]
  num_upsamplings = int(round(np.log2(height / 2.0)))
  if height != width or 2 * 2 ** num_upsamplings != height:
    raise ValueError("paper_deconv_decoder needs square power-of-two images, "
                     "got output_shape %r." % (list(output_shape),))
  if hidden_units != 4 * num_channels:
    raise ValueError("hidden_units (%d) must be 4 * num_channels (%d) to "
                     "reshape to 2x2xnum_channels." %
                     (hidden_units, num_channels))
  net = tf.layers.dense(latent_tensor, hidden_units, activation=tf.nn.relu,
                        name="pd_dense")
  net = tf.reshape(net, [-1, 2, 2, num_channels])
  for i in range(num_upsamplings - 1):
    net = tf.layers.conv2d_transpose(net, filters=num_channels,
                                     kernel_size=kernel_size, strides=2,
                                     padding="same", activation=tf.nn.relu,
                                     name="pd_deconv%d" % (i + 1))
  logits = tf.layers.conv2d_transpose(net, filters=channels,
                                      kernel_size=kernel_size, strides=2,
                                      padding="same", activation=None,
                                      name="pd_output")
  return tf.reshape(logits, [-1] + [height, width, channels])
