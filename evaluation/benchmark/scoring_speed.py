"""Scoring benchmark: an ONNX encoder through sbd_score vs dlib's TF-Hub path.

One random encoder with the layers of dlib's `conv_encoder` (four 4x4
stride-2 convolutions with 32, 32, 64, 64 channels, a dense layer of 256, a
dense map to 10 codes; `methods/shared/architectures.py`) is written once as
an ONNX graph (`onnx.helper`) and once as the TF-Hub module `dlib_evaluate`
reads. Measured side by side, round-robin, on the same batches of observations:
images/s of ONNX Runtime (what `sbd_score` runs) and of the TF-Hub module
called as dlib's `evaluation/evaluate.py` calls it, with their largest
difference; then the total time of `sbd_score` (MIG, FactorVAE score, DCI)
at the study settings (gin_configs/metrics) on the ONNX file.
"""
import os
import tempfile
import time

import numpy as np

from evaluation.benchmark import formatting

NUM_LATENT = 10
# dlib's conv_encoder: (output channels, kernel, stride) of each convolution.
CONV_LAYERS = ((32, 4, 2), (32, 4, 2), (64, 4, 2), (64, 4, 2))
DENSE = 256
TOTAL_METRICS = ("mig", "factor_vae", "dci")
QUICK_BINDINGS = ["mig.num_train = 200",
                  "factor_vae_score.num_variance_estimate = 200",
                  "factor_vae_score.num_train = 20",
                  "factor_vae_score.num_eval = 20",
                  "dci.num_train = 200", "dci.num_test = 100"]


def encoder_params(observation_shape, seed=0):
  """Random weights with the shapes of dlib's conv_encoder (means only).

  Returns:
    Dict with conv kernels in TF's [kh, kw, in, out], biases, and the two
    dense maps (the first on NHWC-flattened features, as TF flattens).
  """
  rng = np.random.RandomState(seed)
  params, channels, side = {}, observation_shape[2], observation_shape[0]
  for i, (out, kernel, stride) in enumerate(CONV_LAYERS):
    scale = np.sqrt(2.0 / (kernel * kernel * channels))
    params["conv%d" % i] = rng.normal(scale=scale, size=(
        kernel, kernel, channels, out)).astype(np.float32)
    params["bias%d" % i] = np.zeros((out,), np.float32)
    channels, side = out, side // stride
  flat = side * side * channels
  params["dense0"] = rng.normal(scale=np.sqrt(2.0 / flat), size=(
      flat, DENSE)).astype(np.float32)
  params["dense1"] = rng.normal(scale=np.sqrt(1.0 / DENSE), size=(
      DENSE, NUM_LATENT)).astype(np.float32)
  return params


def encoder_flops(observation_shape):
  """Multiply-adds x 2 of one image through the encoder."""
  total, channels, side = 0, observation_shape[2], observation_shape[0]
  for out, kernel, stride in CONV_LAYERS:
    side //= stride
    total += 2 * side * side * kernel * kernel * channels * out
    channels = out
  return total + 2 * (side * side * channels * DENSE + DENSE * NUM_LATENT)


def write_onnx(params, observation_shape, path):
  """The encoder as an ONNX graph on NHWC input (SAME padding as TF's)."""
  # pylint: disable=g-import-not-at-top
  import onnx
  from onnx import helper
  from onnx import numpy_helper
  from onnx import TensorProto
  # pylint: enable=g-import-not-at-top
  nodes = [helper.make_node("Transpose", ["images"], ["x0"],
                            perm=[0, 3, 1, 2])]
  init = {}
  for i, (_, kernel, stride) in enumerate(CONV_LAYERS):
    init["w%d" % i] = np.transpose(params["conv%d" % i], (3, 2, 0, 1))
    init["b%d" % i] = params["bias%d" % i]
    # TF's SAME with an even kernel pads one more at the end: SAME_UPPER.
    nodes += [helper.make_node("Conv", ["x%d" % i, "w%d" % i, "b%d" % i],
                               ["c%d" % i], kernel_shape=[kernel, kernel],
                               strides=[stride, stride],
                               auto_pad="SAME_UPPER"),
              helper.make_node("Relu", ["c%d" % i], ["x%d" % (i + 1)])]
  last = "x%d" % len(CONV_LAYERS)
  init["dense0"], init["dense1"] = params["dense0"], params["dense1"]
  nodes += [helper.make_node("Transpose", [last], ["nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node("Flatten", ["nhwc"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "dense0"], ["h"]),
            helper.make_node("Relu", ["h"], ["hr"]),
            helper.make_node("MatMul", ["hr", "dense1"], ["codes"])]
  graph = helper.make_graph(
      nodes, "conv_encoder",
      [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                     ["batch"] + list(observation_shape))],
      [helper.make_tensor_value_info("codes", TensorProto.FLOAT,
                                     ["batch", NUM_LATENT])],
      [numpy_helper.from_array(v, k) for k, v in init.items()])
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
  model.ir_version = 8
  onnx.checker.check_model(model)
  onnx.save(model, path)
  return path


def write_hub(params, observation_shape, model_dir):
  """The encoder as the postprocessed TF-Hub module dlib_evaluate reads."""
  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf
  import tensorflow_hub as hub
  # pylint: enable=g-import-not-at-top

  def module_fn():
    images = tf.placeholder(tf.float32, [None] + list(observation_shape))
    net = images
    for i, (_, _, stride) in enumerate(CONV_LAYERS):
      net = tf.nn.relu(tf.nn.conv2d(net, params["conv%d" % i],
                                    [1, stride, stride, 1], "SAME") +
                       params["bias%d" % i])
    flat = tf.reshape(net, [-1, params["dense0"].shape[0]])
    codes = tf.matmul(tf.nn.relu(tf.matmul(flat, params["dense0"])),
                      params["dense1"])
    hub.add_signature(name="representation", inputs={"images": images},
                      outputs={"default": codes})

  with tf.Graph().as_default():
    module = hub.Module(hub.create_module_spec(module_fn))
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      module.export(os.path.join(model_dir, "tfhub"), session)
  return model_dir


def _rate(fn, batch, min_seconds, min_runs=3):
  """Images/s of fn on `batch`, run until min_seconds and min_runs."""
  runs, start = 0, time.perf_counter()
  while True:
    fn(batch)
    runs += 1
    elapsed = time.perf_counter() - start
    if runs >= min_runs and elapsed >= min_seconds:
      return runs * len(batch) / elapsed


def measure_rates(onnx_path, hub_dir, batch, seconds, repeats):
  """Best images/s of each path on the same batch, measured round-robin.

  Returns:
    Tuple (rates dict with keys "onnx" and "hub", max abs difference of
    their outputs on the batch).
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as hub
  from sbd_plugin.scoring import onnx_model
  # pylint: enable=g-import-not-at-top
  model = onnx_model.OnnxModel(onnx_path, list(batch.shape[1:]))
  with hub.eval_function_for_module(os.path.join(hub_dir, "tfhub")) as f:

    def hub_fn(x):  # As dlib's evaluate.py calls the module.
      return np.array(f(dict(images=x), signature="representation",
                        as_dict=True)["default"])

    fns = {"onnx": model, "hub": hub_fn}
    difference = float(np.abs(model(batch) - hub_fn(batch)).max())
    for fn in fns.values():
      fn(batch)  # Warm-up.
    best = {k: 0.0 for k in fns}
    for _ in range(max(1, repeats)):
      for kind, fn in fns.items():
        best[kind] = max(best[kind], _rate(fn, batch, seconds))
  return best, difference


def report_scoring(report, dataset_name, batch_size, quick, seconds,
                   repeats, total=True):
  """Measures and reports the scoring part.

  Args:
    report: formatting.Report to print to.
    dataset_name: Dataset whose observations are encoded.
    batch_size: Images per model call (sbd_score's --batch-size).
    quick: Tiny metric settings for the total time (smoke run).
    seconds: Minimum seconds per rate measurement.
    repeats: Measurements per rate, best kept.
    total: Whether to time sbd_score's three metrics.
  """
  # pylint: disable=g-import-not-at-top
  from sbd_plugin.scoring import api
  # pylint: enable=g-import-not-at-top
  data = api.load_dataset(dataset_name)
  shape = list(data.observation_shape)
  params = encoder_params(shape)
  report.section("Scoring: an ONNX encoder (sbd_score) vs dlib's TF-Hub path, "
                 "%s, batch %d" % (dataset_name, batch_size))
  with tempfile.TemporaryDirectory(prefix="sbd_bench_score_") as folder:
    onnx_path = write_onnx(params, shape, os.path.join(folder, "enc.onnx"))
    hub_dir = write_hub(params, shape, os.path.join(folder, "hub"))
    batch = data.sample_observations(batch_size, np.random.RandomState(0))
    rates, difference = measure_rates(onnx_path, hub_dir,
                                      batch.astype(np.float32), seconds,
                                      repeats)
    flops = encoder_flops(shape)
    rows = [["ONNX Runtime (sbd_score)", formatting.format_rate(rates["onnx"]),
             "%.2f" % (rates["onnx"] * flops / 1e9)],
            ["TF-Hub module (dlib_evaluate)",
             formatting.format_rate(rates["hub"]),
             "%.2f" % (rates["hub"] * flops / 1e9)]]
    report.table(["path", "images/s", "GFLOP/s"], rows)
    report.note("- encoder: dlib's conv_encoder layers (%s, dense %d, %d "
                "codes), %.1f MFLOP per image, %.0f kB as ONNX" % (
                    ", ".join("%d" % c[0] for c in CONV_LAYERS), DENSE,
                    NUM_LATENT, flops / 1e6,
                    os.path.getsize(onnx_path) / 1e3))
    report.note("- ONNX Runtime / TF-Hub: %s; largest difference of the "
                "codes on the batch: %.2g" % (
                    formatting.format_ratio(formatting.ratio(
                        rates["onnx"], rates["hub"])), difference))
    if not total:
      return
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sbd_bench_out_") as out:
      scores = api.score_onnx(
          onnx_path, dataset_name, list(TOTAL_METRICS),
          metric_bindings=QUICK_BINDINGS if quick else [], output_dir=out,
          batch_size=batch_size,
          log=lambda line: print("  " + line, flush=True))
    wall = time.perf_counter() - start
  rows = [[m, "%.1f" % scores[m]["elapsed_time"]] for m in TOTAL_METRICS]
  rows.append(["total sbd_score (checks, dataset, 3 metrics)", "%.1f" % wall])
  report.table(["sbd_score at %s settings" % (
      "--quick" if quick else "study (gin_configs/metrics)"), "seconds"],
               rows)
