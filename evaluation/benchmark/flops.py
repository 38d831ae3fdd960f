"""FLOPs of the decoders (by formula and by TF's profiler) and GPU peaks."""

# Peak dense FP32 throughput (TFLOP/s, boost clock, no tensor cores/sparsity)
# from NVIDIA's product datasheets. Keys are matched as substrings of the name
# TensorFlow reports (tf.config.experimental.get_device_details), longest key
# first; --gpu-peak-tflops overrides the table.
GPU_PEAK_FP32_TFLOPS = {
    "H100 SXM": 66.9,
    "H100 PCIe": 51.2,
    "H100": 51.2,
    "A100": 19.5,
    "A40": 37.4,
    "A30": 10.3,
    "A10G": 31.2,
    "A10": 31.2,
    "L40S": 91.6,
    "L40": 90.5,
    "L4": 30.3,
    "V100": 15.7,
    "T4": 8.1,
    "P100": 9.3,
    "P4": 5.5,
    "K80": 4.4,
    "RTX A6000": 38.7,
    "RTX 6000 Ada": 91.1,
    "RTX 4090": 82.6,
    "RTX 3090": 35.6,
    "RTX 3080": 29.8,
    "RTX 2080 Ti": 13.4,
    "TITAN V": 14.9,
}


def conv2d_flops(height, width, kernel_size, in_channels, out_channels):
  """FLOPs of one stride-1 SAME convolution on one image (2 per MAC)."""
  return 2 * height * width * kernel_size * kernel_size * in_channels * (
      out_channels)


def sbd_forward_flops(output_shape, num_latent, num_layers=2, num_channels=64,
                      kernel_size=4, output_kernel_size=4):
  """Convolution FLOPs of one forward pass of the SBD on one image.

  Counts the convolutions of sbd_plugin.architectures.spatial_broadcast_decoder
  with padding "SAME" (the grid is the image); bias adds, ReLUs and the
  broadcast itself are a fraction of a percent and left out.

  Args:
    output_shape: [height, width, channels] of the images.
    num_latent: Number of latent variables (the first layer sees
      num_latent + 2 channels: the latents and the x, y coordinates).
    num_layers: Hidden convolutions.
    num_channels: Channels of each hidden convolution.
    kernel_size: Kernel side of the hidden convolutions.
    output_kernel_size: Kernel side of the output convolution.

  Returns:
    Integer number of floating point operations.
  """
  height, width, channels = [int(d) for d in output_shape]
  flops, in_channels = 0, num_latent + 2
  for _ in range(num_layers):
    flops += conv2d_flops(height, width, kernel_size, in_channels,
                          num_channels)
    in_channels = num_channels
  return flops + conv2d_flops(height, width, output_kernel_size, in_channels,
                              channels)


def profiled_decoder_flops(decoder, output_shape, num_latent=10,
                           op_types=None):
  """Forward FLOPs of a decoder on one image, counted by TF's profiler.

  Args:
    decoder: A key of harness.DECODERS.
    output_shape: [height, width, channels].
    num_latent: Number of latent variables.
    op_types: Optional list of op type regexes to count (default: all ops
      with registered FLOP statistics).

  Returns:
    Integer FLOPs.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.shared import architectures  # pylint: disable=g-import-not-at-top
  from sbd_plugin import architectures as sbd_architectures  # pylint: disable=g-import-not-at-top
  fns = {"deconv_decoder": architectures.deconv_decoder,
         "spatial_broadcast_decoder":
             sbd_architectures.spatial_broadcast_decoder}
  graph = tf.Graph()
  with graph.as_default():
    fns[decoder](tf.zeros([1, num_latent]), list(output_shape))
    builder = tf.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output()
    if op_types:
      options = options.account_displayed_op_only(True).with_node_names(
          show_name_regexes=[".*"]).build()
      options["account_type_regexes"] = list(op_types)
    else:
      options = options.build()
    return int(tf.profiler.profile(graph, options=options).total_float_ops)


def profiled_encoder_flops(output_shape, num_latent=10):
  """Forward FLOPs of dlib's conv encoder on one image (TF's profiler).

  Args:
    output_shape: [height, width, channels] of the images.
    num_latent: Number of latent variables.

  Returns:
    Integer FLOPs.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.shared import architectures  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    architectures.conv_encoder(tf.zeros([1] + list(output_shape)), num_latent)
    builder = tf.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    return int(tf.profiler.profile(graph, options=options).total_float_ops)


def peak_tflops(device_name, table=None):
  """Returns the FP32 peak of a GPU from GPU_PEAK_FP32_TFLOPS, or None.

  Args:
    device_name: Name as reported by TensorFlow, e.g. "NVIDIA A100-SXM4-40GB".
    table: Dict from name substring to TFLOP/s (default GPU_PEAK_FP32_TFLOPS).

  Returns:
    Float TFLOP/s of the longest matching key, or None if none matches.
  """
  table = GPU_PEAK_FP32_TFLOPS if table is None else table
  name = (device_name or "").upper()
  for key in sorted(table, key=len, reverse=True):
    if key.upper() in name:
      return table[key]
  return None
