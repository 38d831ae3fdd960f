"""Small ONNX encoders built with `onnx.helper` (no training framework), and
the same functions as the TF-Hub module `dlib_evaluate` reads.

An encoder here is a dict of numpy parameters plus a kind; `onnx_encoder`
writes it as an ONNX graph, `write_hub_module` as a dlib TF-Hub module
(signature "representation", output "default", as dlib's postprocessing
saves it), so one fixed function can be scored both ways.
"""
import os

import numpy as np
import onnx
from onnx import helper
from onnx import numpy_helper
from onnx import TensorProto

OPSET = 17
IR_VERSION = 8  # Readable by every ONNX Runtime release since 1.10.
COLORED_SPRITES_SHAPE = (64, 64, 3)


def _model(nodes, inputs, outputs, initializers, name="encoder", check=True):
  graph = helper.make_graph(nodes, name, inputs, outputs,
                            [numpy_helper.from_array(np.asarray(v), k)
                             for k, v in initializers.items()])
  model = helper.make_model(graph, producer_name="sbd_plugin tests",
                            opset_imports=[helper.make_opsetid("", OPSET)])
  model.ir_version = IR_VERSION
  if check:
    onnx.checker.check_model(model)
  return model


def _input(shape, layout, dtype=TensorProto.FLOAT, batch="batch"):
  height, width, channels = shape
  dims = ([batch, height, width, channels] if layout == "nhwc" else
          [batch, channels, height, width])
  return helper.make_tensor_value_info("images", dtype, dims)


def linear_params(seed=0, shape=COLORED_SPRITES_SHAPE, dims=10, sparse=False):
  """A linear map of the pixels (NHWC order, flattened) to `dims` codes.

  Args:
    seed: Seed of the weights.
    shape: Observation shape [height, width, channels].
    dims: Output dimensions.
    sparse: Each code is one pixel times a power of two: every runtime
      computes it exactly (adding zeros and scaling by 2^k are exact).

  Returns:
    Dict with "kind" and the weights [pixels, dims].
  """
  rng = np.random.RandomState(seed)
  pixels = int(np.prod(shape))
  if sparse:
    weights = np.zeros((pixels, dims), np.float32)
    rows = rng.choice(pixels, dims, replace=False)
    weights[rows, np.arange(dims)] = 2.0 ** rng.randint(-2, 3, size=dims)
  else:
    weights = rng.normal(scale=0.02, size=(pixels, dims)).astype(np.float32)
  return {"kind": "linear", "weights": weights, "shape": tuple(shape)}


def conv_params(seed=0, shape=COLORED_SPRITES_SHAPE, channels=(8, 8), dims=10):
  """A small convolutional encoder: two 4x4 stride-4 convs, ReLU, a dense map.

  Returns:
    Dict with "kind", conv weights in ONNX's [out, in, kh, kw], biases and
    the dense map [flattened NCHW features, dims].
  """
  rng = np.random.RandomState(seed)
  params = {"kind": "conv", "shape": tuple(shape)}
  previous = shape[2]
  for i, out in enumerate(channels):
    params["w%d" % i] = rng.normal(scale=0.3, size=(out, previous, 4, 4)
                                  ).astype(np.float32)
    params["b%d" % i] = rng.normal(scale=0.1, size=(out,)).astype(np.float32)
    previous = out
  side = shape[0] // 4 ** len(channels)
  params["dense"] = rng.normal(scale=0.2, size=(previous * side * side, dims)
                               ).astype(np.float32)
  params["dense_b"] = np.zeros((dims,), np.float32)
  return params


def onnx_encoder(params, layout="nhwc", batch="batch"):
  """The encoder `params` as an ONNX ModelProto taking images in `layout`."""
  shape = params["shape"]
  nodes, init = [], {}
  source = "images"
  if params["kind"] == "linear":
    weights = params["weights"]
    if layout == "nchw":  # The map is defined on NHWC pixels.
      nodes.append(helper.make_node("Transpose", ["images"], ["nhwc"],
                                    perm=[0, 2, 3, 1]))
      source = "nhwc"
    nodes += [helper.make_node("Flatten", [source], ["flat"], axis=1),
              helper.make_node("MatMul", ["flat", "W"], ["codes"])]
    init["W"] = weights
    dims = weights.shape[1]
  else:
    if layout == "nhwc":
      nodes.append(helper.make_node("Transpose", ["images"], ["nchw"],
                                    perm=[0, 3, 1, 2]))
      source = "nchw"
    i = 0
    while "w%d" % i in params:
      init["w%d" % i], init["b%d" % i] = params["w%d" % i], params["b%d" % i]
      nodes += [helper.make_node("Conv", [source, "w%d" % i, "b%d" % i],
                                 ["conv%d" % i], kernel_shape=[4, 4],
                                 strides=[4, 4]),
                helper.make_node("Relu", ["conv%d" % i], ["relu%d" % i])]
      source = "relu%d" % i
      i += 1
    init["dense"], init["dense_b"] = params["dense"], params["dense_b"]
    nodes += [helper.make_node("Flatten", [source], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "dense", "dense_b"],
                               ["codes"])]
    dims = params["dense"].shape[1]
  output = helper.make_tensor_value_info("codes", TensorProto.FLOAT,
                                         [batch, dims])
  return _model(nodes, [_input(shape, layout, batch=batch)], [output], init)


EXAMPLE_ENCODER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "data", "example_encoder.onnx")


def example_encoder():
  """The worked example's encoder (docs/scoring.md), as PyTorch exports it.

  A random (untrained) convolutional encoder of colored sprites: NCHW input,
  two 4x4 stride-4 convolutions with 4 channels, a dense map to 6 codes.
  `tests/data/example_encoder.onnx` is `save(example_encoder(), ...)`.
  """
  return onnx_encoder(conv_params(seed=2019, channels=(4, 4), dims=6),
                      layout="nchw")


def write_hub_module(params, model_dir):
  """Writes `params` as the postprocessed module `dlib_evaluate` reads.

  Writes `<model_dir>/tfhub` (signature "representation": images NHWC ->
  "default" [batch, dims]) and an empty `<model_dir>/results/` (dlib copies
  it into each metric's results). Runs TensorFlow 1 graph code: call it in a
  process where the plugin is active (`import sbd_plugin`).
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf
  import tensorflow_hub as hub
  # pylint: enable=g-import-not-at-top
  shape = params["shape"]

  def module_fn():
    images = tf.placeholder(tf.float32, [None] + list(shape), name="images")
    if params["kind"] == "linear":
      codes = tf.matmul(tf.reshape(images, [-1, int(np.prod(shape))]),
                        tf.constant(params["weights"]))
    else:
      net = images
      i = 0
      while "w%d" % i in params:
        # ONNX [out, in, kh, kw] -> TF [kh, kw, in, out].
        kernel = np.transpose(params["w%d" % i], (2, 3, 1, 0))
        net = tf.nn.relu(tf.nn.conv2d(net, tf.constant(kernel),
                                      [1, 4, 4, 1], "VALID") +
                         tf.constant(params["b%d" % i]))
        i += 1
      # ONNX flattens NCHW.
      flat = tf.reshape(tf.transpose(net, [0, 3, 1, 2]),
                        [-1, params["dense"].shape[0]])
      codes = tf.matmul(flat, tf.constant(params["dense"])) + tf.constant(
          params["dense_b"])
    hub.add_signature(name="representation", inputs={"images": images},
                      outputs={"default": codes})

  spec = hub.create_module_spec(module_fn)
  with tf.Graph().as_default():
    module = hub.Module(spec)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      module.export(os.path.join(model_dir, "tfhub"), session)
  os.makedirs(os.path.join(model_dir, "results"), exist_ok=True)


def save(model, path):
  """Writes a ModelProto to `path`; returns the path."""
  onnx.save(model, path)
  return path


# --- Broken models, one fault each ---------------------------------------------


def wrong_rank_output(shape=COLORED_SPRITES_SHAPE):
  """Returns the images themselves: output [batch, H, W, C], not [batch, dims]."""
  out = helper.make_tensor_value_info("codes", TensorProto.FLOAT,
                                      ["batch"] + list(shape))
  return _model([helper.make_node("Identity", ["images"], ["codes"])],
                [_input(shape, "nhwc")], [out], {})


def integer_output(shape=COLORED_SPRITES_SHAPE, dims=4):
  """A linear map cast to int64."""
  params = linear_params(shape=shape, dims=dims)
  nodes = [helper.make_node("Flatten", ["images"], ["flat"], axis=1),
           helper.make_node("MatMul", ["flat", "W"], ["codes_f"]),
           helper.make_node("Cast", ["codes_f"], ["codes"],
                            to=TensorProto.INT64)]
  out = helper.make_tensor_value_info("codes", TensorProto.INT64,
                                      ["batch", dims])
  return _model(nodes, [_input(shape, "nhwc")], [out],
                {"W": params["weights"]})


def nan_output(shape=COLORED_SPRITES_SHAPE, dims=4):
  """A linear map whose second code is 0 * inf = NaN for every image."""
  params = linear_params(shape=shape, dims=dims)
  scale = np.ones((dims,), np.float32)
  scale[1] = np.inf
  zero = np.ones((dims,), np.float32)
  zero[1] = 0.0
  nodes = [helper.make_node("Flatten", ["images"], ["flat"], axis=1),
           helper.make_node("MatMul", ["flat", "W"], ["codes_a"]),
           helper.make_node("Mul", ["codes_a", "zero"], ["codes_b"]),
           helper.make_node("Mul", ["codes_b", "scale"], ["codes"])]
  out = helper.make_tensor_value_info("codes", TensorProto.FLOAT,
                                      ["batch", dims])
  return _model(nodes, [_input(shape, "nhwc")], [out],
                {"W": params["weights"], "zero": zero, "scale": scale})


def zero_dims_output(shape=COLORED_SPRITES_SHAPE):
  """A linear map to zero codes (declared [batch, 0])."""
  weights = np.zeros((int(np.prod(shape)), 0), np.float32)
  nodes = [helper.make_node("Flatten", ["images"], ["flat"], axis=1),
           helper.make_node("MatMul", ["flat", "W"], ["codes"])]
  out = helper.make_tensor_value_info("codes", TensorProto.FLOAT,
                                      ["batch", 0])
  return _model(nodes, [_input(shape, "nhwc")], [out], {"W": weights})


def undeclared_output_rank(shape=COLORED_SPRITES_SHAPE):
  """Returns the images; the output's shape is not declared (found at run)."""
  out = helper.make_tensor_value_info("codes", TensorProto.FLOAT, None)
  # The checker wants a declared shape; ONNX Runtime runs without one.
  return _model([helper.make_node("Identity", ["images"], ["codes"])],
                [_input(shape, "nhwc")], [out], {}, check=False)
