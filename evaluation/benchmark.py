"""Benchmarks of sbd_plugin on this machine (installed as `sbd_benchmark`).

  python -m evaluation.benchmark                       # full run (CPU [+GPU])
  python -m evaluation.benchmark --quick               # smoke run, seconds
  python -m evaluation.benchmark --parts input,train --datasets colored_sprites
  python -m evaluation.benchmark --output docs/bench.md  # also a Markdown file

Parts, each measured side by side in one run:
  input    images/s of the input dlib's trainer builds (train._make_input_fn,
           graph mode, a tf.Session pulling batches), stock vs plugin pipeline.
  train    steps/s of dlib's VAE train_op (model_fn in TRAIN mode, configured
           by gin_configs/{deconv,broadcast}_vae.gin) with a constant
           in-memory batch, the plugin's input and dlib's stock input; the
           input overhead is 1 - steps/s(real) / steps/s(constant). With a GPU
           visible to TensorFlow the same runs on the GPU, plus the decoder's
           achieved FLOP/s against the device's peak.
  memory   resident memory of a fresh process per dataset: after import vs
           after constructing the dataset and sampling batches.
  metrics  seconds per metric (MIG, FactorVAE score; DCI with --metrics) at
           dlib's study settings (gin_configs/metrics/*.gin) on a fixed
           random linear representation (a 10-d projection of the pixels).

Rates are the best of --repeats measurements (the machine may be shared);
the variants of a comparison are measured round-robin so load drifts hit all
of them alike. The load average is printed at the start and the end.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DECODERS = {
    # Name printed -> plugin model config selecting the decoder.
    "deconv_decoder": "deconv_vae.gin",
    "spatial_broadcast_decoder": "broadcast_vae.gin",
}
DEFAULT_DATASETS = ("colored_sprites", "object_in_room", "dummy_data")
PARTS = ("input", "train", "memory", "metrics")
METRICS = ("mig", "factor_vae", "dci")

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

# Sizes of the full and of the --quick run.
FULL = dict(input_seconds=2.0, train_seconds=5.0, train_min_steps=3,
            warmup_steps=2, memory_batches=10, repeats=3)
QUICK = dict(input_seconds=0.2, train_seconds=0.2, train_min_steps=2,
             warmup_steps=1, memory_batches=2, repeats=1)
# Bindings shrinking the metrics for --quick (the full run uses the gin files).
QUICK_METRIC_BINDINGS = {
    "mig": ["mig.num_train = 200"],
    "factor_vae": ["factor_vae_score.num_variance_estimate = 200",
                   "factor_vae_score.num_train = 20",
                   "factor_vae_score.num_eval = 20",
                   "factor_vae_score.batch_size = 8"],
    "dci": ["dci.num_train = 200", "dci.num_test = 100"],
}


# --- Pure helpers (unit-tested) -----------------------------------------------


def ratio(numerator, denominator):
  """Returns numerator / denominator, or nan if either is missing or <= 0."""
  if not numerator or not denominator or denominator <= 0:
    return float("nan")
  return float(numerator) / float(denominator)


def input_overhead(real_rate, constant_rate):
  """Share of the step time spent waiting for input.

  Args:
    real_rate: Steps/s with the real input pipeline.
    constant_rate: Steps/s with a constant in-memory batch.

  Returns:
    1 - real_rate / constant_rate (may be slightly negative from noise), or
    nan if a rate is missing.
  """
  return 1.0 - ratio(real_rate, constant_rate)


def format_ratio(value):
  """Formats a speed-up, e.g. 12.3456 -> '12.3x'."""
  return "n/a" if value != value else "%.1fx" % value


def format_percent(value):
  """Formats a fraction as a percentage, e.g. 0.0123 -> '1.2%'."""
  if value != value:
    return "n/a"
  # Tiny shares (input busy time of a slow step) keep two significant digits.
  if 0 < abs(value) < 0.001:
    return "%.2f%%" % (100.0 * value)
  return "%.1f%%" % (100.0 * value)


def format_rate(value):
  """Formats a rate with a precision that suits its size."""
  if value is None or value != value:
    return "n/a"
  if value >= 100:
    return "%d" % round(value)
  if value >= 10:
    return "%.1f" % value
  return "%.2f" % value


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


def markdown_table(header, rows):
  """Returns a Markdown table (a list of lines) of strings."""
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(str(c) for c in row) + " |")
  return lines


# --- Machine ------------------------------------------------------------------


def _read_proc(path, key):
  try:
    with open(path) as f:
      for line in f:
        if line.startswith(key):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


def onednn_enabled():
  """Returns whether TensorFlow's oneDNN optimisations are on, or None."""
  try:
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
    return bool(_pywrap_util_port.IsMklEnabled())
  except (ImportError, AttributeError):
    return None


def machine_info():
  """Returns a dict describing the machine and the software stack."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  mem_kb = _read_proc("/proc/meminfo", "MemTotal")
  gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
  return {
      "nproc": len(os.sched_getaffinity(0)),
      "cpu": _read_proc("/proc/cpuinfo", "model name") or platform.processor(),
      "ram_gib": (float(mem_kb.split()[0]) / 2**20) if mem_kb else None,
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "onednn": onednn_enabled(),
      "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"),
      "gpus": gpus,
  }


def _gpu_names():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  names = []
  for device in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(device)
    names.append(details.get("device_name", device.name))
  return names


# --- Input pipeline -----------------------------------------------------------


def _dataset(name):
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  return named_data.get_named_ground_truth_data(name)


def _session_config(device):
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  if device == "cpu":
    return tf.ConfigProto(device_count={"GPU": 0})
  config = tf.ConfigProto()
  config.gpu_options.allow_growth = True
  return config


def _input_graph(data, batch_size, batched, seed=0):
  """Builds dlib's trainer input with the stock or the plugin pipeline."""
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    # The pipeline reads `input_pipeline.batched` when the data set is built.
    with gin.unlock_config():
      gin.bind_parameter("input_pipeline.batched", batched)
    try:
      images = train._make_input_fn(data, seed)({"batch_size": batch_size})  # pylint: disable=protected-access
    finally:
      gin.clear_config()
  return graph, images


def _time_op(sess, op, min_seconds, min_runs):
  """Runs `op` until min_seconds and min_runs are reached; returns runs/s."""
  runs, start = 0, time.perf_counter()
  while True:
    sess.run(op)
    runs += 1
    elapsed = time.perf_counter() - start
    if runs >= min_runs and elapsed >= min_seconds:
      return runs / elapsed


def measure_input(name, batch_size, seconds, repeats):
  """Images/s of dlib's trainer input, stock vs plugin pipeline.

  Both go through train._make_input_fn, as in dlib's trainer; a session pulls
  batches with sess.run(get_next.op), which produces each batch without
  copying it to numpy (a train_op consumes it the same way).

  Args:
    name: Dataset name.
    batch_size: Images per batch.
    seconds: Minimum seconds per measurement.
    repeats: Measurements per pipeline (best kept), taken alternately.

  Returns:
    Dict with "stock" and "plugin" images/s.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  data = _dataset(name)
  sessions = {}
  for kind, batched in (("stock", False), ("plugin", True)):
    graph, images = _input_graph(data, batch_size, batched)
    sess = tf.Session(graph=graph, config=_session_config("cpu"))
    for _ in range(3):
      sess.run(images.op)  # Warm-up: graph set-up, generator start.
    sessions[kind] = (sess, images.op)
  best = {kind: 0.0 for kind in sessions}
  for _ in range(max(1, repeats)):
    for kind, (sess, op) in sessions.items():
      best[kind] = max(best[kind],
                       batch_size * _time_op(sess, op, seconds, 3))
  for sess, _ in sessions.values():
    sess.close()
  return best


# --- Training steps -----------------------------------------------------------


def _gin_search_path():
  import gin  # pylint: disable=g-import-not-at-top
  import gin_configs  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(gin_configs.__file__)))
  gin.add_config_file_search_path(root)
  return root


def _model_config(decoder):
  return os.path.join(_gin_search_path(), "gin_configs", DECODERS[decoder])


def train_batch_size_from_gin(decoder):
  """Returns model.batch_size of the plugin's config of `decoder`."""
  import gin  # pylint: disable=g-import-not-at-top
  gin.parse_config_files_and_bindings([_model_config(decoder)], [])
  try:
    return int(gin.query_parameter("model.batch_size"))
  finally:
    gin.clear_config()


def build_train_graph(decoder, dataset_name, batch_size, input_kind, seed=0):
  """Builds dlib's VAE training graph as its trainer does.

  The model comes from the plugin's gin config (gin_configs/*_vae.gin) with
  `dataset.name` overridden; its model_fn is called in TRAIN mode (what
  TPUEstimator does with use_tpu=False) and the EstimatorSpec's train_op is
  returned. Summaries and the logging hook of the spec are not run.

  Args:
    decoder: A key of DECODERS.
    dataset_name: Dataset name.
    batch_size: Training batch size.
    input_kind: "constant" (one in-memory batch as tf.constant), "plugin"
      (dlib's input with the plugin's pipeline) or "stock" (dlib's own).
    seed: Graph and input seed.

  Returns:
    Tuple (graph, train_op, init_op).
  """
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  gin.parse_config_files_and_bindings(
      [_model_config(decoder)],
      ["dataset.name = %r" % dataset_name,
       "input_pipeline.batched = %s" % (input_kind != "stock")])
  try:
    model = gin.query_parameter("model.model").scoped_configurable_fn()
    data = named_data.get_named_ground_truth_data()
    graph = tf.Graph()
    with graph.as_default():
      tf.set_random_seed(seed)
      if input_kind == "constant":
        batch = data.sample_observations(batch_size,
                                         np.random.RandomState(seed))
        features = tf.constant(np.asarray(batch, np.float32))
      else:
        features = train._make_input_fn(data, seed)({"batch_size": batch_size})  # pylint: disable=protected-access
      tf.train.get_or_create_global_step()
      spec = model.model_fn(features, None, tf.estimator.ModeKeys.TRAIN,
                            {"batch_size": batch_size})
      init = tf.global_variables_initializer()
  finally:
    gin.clear_config()
  return graph, spec.train_op, init


def measure_train(decoder, dataset_name, batch_size, device, sizes,
                  input_kinds=("constant", "plugin", "stock")):
  """Steps/s of dlib's train_op per input kind, measured round-robin.

  Args:
    decoder: A key of DECODERS.
    dataset_name: Dataset name.
    batch_size: Training batch size.
    device: "cpu" or "gpu" (TensorFlow's default placement).
    sizes: Dict with train_seconds, train_min_steps, warmup_steps, repeats.
    input_kinds: Input kinds to measure (see build_train_graph).

  Returns:
    Dict from input kind to steps/s.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  sessions = {}
  for kind in input_kinds:
    graph, train_op, init = build_train_graph(decoder, dataset_name,
                                              batch_size, kind)
    sess = tf.Session(graph=graph, config=_session_config(device))
    sess.run(init)
    for _ in range(sizes["warmup_steps"]):
      sess.run(train_op)
    sessions[kind] = (sess, train_op)
  best = {kind: 0.0 for kind in input_kinds}
  for _ in range(sizes["repeats"]):
    for kind, (sess, op) in sessions.items():
      best[kind] = max(best[kind], _time_op(sess, op, sizes["train_seconds"],
                                            sizes["train_min_steps"]))
  for sess, _ in sessions.values():
    sess.close()
  return best


def profiled_decoder_flops(decoder, output_shape, num_latent=10,
                           op_types=None):
  """Forward FLOPs of a decoder on one image, counted by TF's profiler.

  Args:
    decoder: A key of DECODERS.
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


# --- Memory -------------------------------------------------------------------


def _rss_kib():
  """Current resident memory of this process from /proc (KiB)."""
  values = {}
  for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
    field = _read_proc("/proc/self/status", key + ":")
    values[key] = int(field.split()[0]) if field else 0
  return values


def memory_child(name, batches, batch_size):
  """Runs in a fresh process: RSS after import and after using a dataset."""
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top,unused-import
  after_import = _rss_kib()
  data = _dataset(name)
  random_state = np.random.RandomState(0)
  for _ in range(batches):
    np.asarray(data.sample_observations(batch_size, random_state), np.float32)
  after = _rss_kib()
  print(json.dumps({"after_import": after_import, "after_dataset": after}))


def measure_memory(name, batches, batch_size):
  """RSS of a fresh process before and after constructing `name` (MiB).

  Args:
    name: Dataset name.
    batches: Batches sampled (sample_observations) after construction.
    batch_size: Images per batch.

  Returns:
    Dict with import, total and dataset RSS in MiB, and the dataset's
    file-backed share (memory-mapped caches, shared between processes).
  """
  _dataset(name)  # Build on-disk caches here, so the child only reads them.
  proc = subprocess.run(
      [sys.executable, "-m", "evaluation.benchmark", "--memory-child", name,
       "--memory-batches", str(batches), "--batch-size", str(batch_size)],
      cwd=_REPO, capture_output=True, text=True, check=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  before, after = result["after_import"], result["after_dataset"]
  mib = lambda kib: kib / 1024.0
  return {"import": mib(before["VmRSS"]), "total": mib(after["VmRSS"]),
          "dataset": mib(after["VmRSS"] - before["VmRSS"]),
          "dataset_file": mib(after["RssFile"] - before["RssFile"]),
          "peak": mib(after["VmHWM"])}


# --- Metrics ------------------------------------------------------------------


def random_linear_representation(observation_shape, num_latent=10, seed=0):
  """A fixed random projection of the pixels to `num_latent` codes."""
  weights = np.random.RandomState(seed).normal(
      size=(int(np.prod(observation_shape)), num_latent)).astype(np.float32)

  def representation(observations):
    flat = np.reshape(np.asarray(observations, np.float32),
                      (len(observations), -1))
    return flat.dot(weights)

  return representation


def measure_metric(metric, dataset_name, quick):
  """Seconds of one metric at the settings of gin_configs/metrics/*.gin."""
  import gin  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation import evaluate  # pylint: disable=g-import-not-at-top,unused-import
  from disentanglement_lib.evaluation.metrics import dci  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import factor_vae  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import mig  # pylint: disable=g-import-not-at-top
  fns = {"mig": mig.compute_mig, "factor_vae": factor_vae.compute_factor_vae,
         "dci": dci.compute_dci}
  config = os.path.join(_gin_search_path(), "gin_configs", "metrics",
                        metric + ".gin")
  bindings = ["dataset.name = %r" % dataset_name]
  if quick:
    bindings += QUICK_METRIC_BINDINGS[metric]
  gin.parse_config_files_and_bindings([config], bindings)
  try:
    data = _dataset(dataset_name)
    representation = random_linear_representation(data.observation_shape)
    start = time.perf_counter()
    fns[metric](data, representation, np.random.RandomState(0), None)
    return time.perf_counter() - start
  finally:
    gin.clear_config()


# --- Command line -------------------------------------------------------------


def _parser():
  parser = argparse.ArgumentParser(
      prog="sbd_benchmark", description=__doc__.split("\n", 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("--quick", action="store_true",
                      help="tiny sizes (smoke run); default datasets: "
                      "dummy_data only")
  parser.add_argument("--parts", default=",".join(PARTS),
                      help="comma-separated subset of %s" % ",".join(PARTS))
  parser.add_argument("--datasets", default=None,
                      help="datasets of the input and memory parts (default: "
                      "%s)" % ",".join(DEFAULT_DATASETS))
  parser.add_argument("--batch-size", type=int, default=64,
                      help="input part: images per batch")
  parser.add_argument("--train-dataset", default=None,
                      help="dataset of the train part (default: "
                      "colored_sprites; --quick: dummy_data)")
  parser.add_argument("--train-batch-size", type=int, default=None,
                      help="training batch (default: model.batch_size of the "
                      "gin configs, 16; --quick: 2)")
  parser.add_argument("--decoders", default=",".join(DECODERS),
                      help="decoders of the train part")
  parser.add_argument("--no-stock-train", action="store_true",
                      help="train part: skip the run with dlib's stock input")
  parser.add_argument("--metrics", default=None,
                      help="metrics to time, from %s (default: mig,factor_vae:"
                      " DCI's gradient boosted trees at study settings take "
                      "longer than the rest of the run on a 2-core machine, "
                      "and ~10 s even with --quick)" % ",".join(METRICS))
  parser.add_argument("--metric-dataset", default=None,
                      help="dataset of the metrics part (default: "
                      "colored_sprites; --quick: dummy_data)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="measurements per number, best kept (default 3)")
  parser.add_argument("--input-seconds", type=float, default=None)
  parser.add_argument("--train-seconds", type=float, default=None)
  parser.add_argument("--memory-batches", type=int, default=None)
  parser.add_argument("--gpu-peak-tflops", type=float, default=None,
                      help="peak FP32 TFLOP/s of the GPU (default: table)")
  parser.add_argument("--output", default=None,
                      help="also write the results as Markdown to this file")
  parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
  return parser


def _split(text):
  return [t.strip() for t in text.split(",") if t.strip()]


class _Report(object):
  """Prints sections and tables, and keeps them for the Markdown file."""

  def __init__(self):
    self.lines = []

  def section(self, title):
    print("\n== %s ==" % title, flush=True)
    self.lines += ["", "### " + title, ""]

  def table(self, header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header] + list(rows):
      print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    self.lines += markdown_table(header, rows) + [""]

  def note(self, text):
    print(text, flush=True)
    self.lines.append(text + "  ")


def _run_input(report, datasets, args, sizes, input_rates):
  report.section("Input pipeline: images/s of dlib's train._make_input_fn, "
                 "batch %d" % args.batch_size)
  rows, ratios = [], []
  for name in datasets:
    rates = measure_input(name, args.batch_size, sizes["input_seconds"],
                          sizes["repeats"])
    input_rates[name] = rates
    r = ratio(rates["plugin"], rates["stock"])
    rows.append([name, format_rate(rates["stock"]),
                 format_rate(rates["plugin"]), format_ratio(r)])
    ratios.append("input ratio %s: %s (plugin / stock)" % (name,
                                                           format_ratio(r)))
  report.table(["dataset", "stock img/s", "plugin img/s", "plugin/stock"],
               rows)
  for line in ratios:
    report.note(line)


def _run_train(report, args, sizes, device, input_rates):
  decoders = _split(args.decoders)
  dataset = args.train_dataset or ("dummy_data" if args.quick else
                                   "colored_sprites")
  batch_size = args.train_batch_size or (
      2 if args.quick else train_batch_size_from_gin(decoders[0]))
  kinds = ("constant", "plugin") if args.no_stock_train else (
      "constant", "plugin", "stock")
  report.section("Training steps/s on %s: dlib model_fn train_op, %s, "
                 "batch %d" % (device.upper(), dataset, batch_size))
  rows, notes = [], []
  shape = _dataset(dataset).observation_shape
  peak = None
  if device == "gpu":
    names = _gpu_names()
    peak = args.gpu_peak_tflops or peak_tflops(names[0] if names else "")
    report.note("GPU: %s; FP32 peak %s TFLOP/s" % (
        ", ".join(names), peak if peak else "unknown (use --gpu-peak-tflops)"))
  for decoder in decoders:
    rates = measure_train(decoder, dataset, batch_size, device, sizes, kinds)
    plugin_overhead = input_overhead(rates["plugin"], rates["constant"])
    stock_overhead = input_overhead(rates.get("stock"), rates["constant"])
    # Training is ~3x the forward pass (forward + two backward products).
    decoder_flops = 3 * batch_size * profiled_decoder_flops(decoder, shape)
    achieved = decoder_flops * rates["plugin"]
    row = [decoder, format_rate(rates["constant"]),
           format_rate(rates["plugin"]), format_percent(plugin_overhead)]
    if "stock" in rates:
      row += [format_rate(rates["stock"]), format_percent(stock_overhead)]
    row += ["%.1f" % (achieved / 1e9)]
    if device == "gpu":
      row += [format_percent(achieved / (peak * 1e12)) if peak else "n/a"]
    rows.append(row)
    notes.append("input overhead %s %s (plugin): %s" % (
        device, decoder, format_percent(plugin_overhead)))
    if "stock" in rates:
      notes.append("input overhead %s %s (stock): %s" % (
          device, decoder, format_percent(stock_overhead)))
    if dataset in input_rates:
      # Busy time of the input per step (from the input part's rates): an
      # upper bound of the overhead that is not buried in timing noise.
      for kind in ("plugin", "stock"):
        notes.append("input busy time per step %s %s (%s): %s" % (
            device, decoder, kind, format_percent(
                rates["constant"] * batch_size / input_rates[dataset][kind])))
  header = ["decoder", "constant steps/s", "plugin steps/s",
            "plugin overhead"]
  if "stock" in kinds:
    header += ["stock steps/s", "stock overhead"]
  header += ["decoder GFLOP/s"]
  if device == "gpu":
    header += ["of peak"]
  report.table(header, rows)
  for line in notes:
    report.note(line)
  report.note("overhead = 1 - steps/s(real input) / steps/s(constant batch); "
              "decoder GFLOP/s = 3 x forward FLOPs (tf profiler) x batch x "
              "steps/s with the plugin's input.")


def _run_memory(report, datasets, args, sizes):
  report.section("Resident memory (MiB), fresh process per dataset, %d "
                 "batches of %d" % (sizes["memory_batches"], args.batch_size))
  rows = []
  for name in datasets:
    mem = measure_memory(name, sizes["memory_batches"], args.batch_size)
    rows.append([name, "%.0f" % mem["import"], "%.0f" % mem["total"],
                 "%.0f" % mem["dataset"], "%.0f" % mem["dataset_file"],
                 "%.0f" % mem["peak"]])
  report.table(["dataset", "RSS after import", "RSS total", "dataset share",
                "of which file-backed", "peak RSS"], rows)
  report.note("file-backed: memory-mapped dataset caches, shared through the "
              "page cache by all processes using the dataset.")


def _run_metrics(report, args):
  dataset = args.metric_dataset or ("dummy_data" if args.quick else
                                    "colored_sprites")
  report.section("Metrics: seconds at %s settings on %s, random linear "
                 "representation (10-d)" % (
                     "--quick" if args.quick else
                     "dlib study (gin_configs/metrics)", dataset))
  rows = []
  metrics = _split(args.metrics) if args.metrics else ["mig", "factor_vae"]
  for metric in metrics:
    seconds = measure_metric(metric, dataset, args.quick)
    print("  %s done: %.1f s" % (metric, seconds), flush=True)
    rows.append([metric, "%.1f" % seconds])
  report.table(["metric", "seconds"], rows)
  if "dci" not in metrics:
    report.note("DCI not run (slow); add it with --metrics mig,factor_vae,dci.")


def _machine_lines(info, load_start, command):
  return [
      "- command: `%s`" % command,
      "- CPU: %s, nproc %d, RAM %.1f GiB" % (info["cpu"], info["nproc"],
                                             info["ram_gib"] or 0),
      "- Python %s, TensorFlow %s, oneDNN %s (TF_ENABLE_ONEDNN_OPTS=%s)" % (
          info["python"], info["tensorflow"],
          {True: "on", False: "off", None: "unknown"}[info["onednn"]],
          info["TF_ENABLE_ONEDNN_OPTS"]),
      "- GPUs seen by TensorFlow: %s" % (", ".join(info["gpus"]) or "none"),
      "- load average at start: %.2f %.2f %.2f" % load_start,
  ]


def main(argv=None):
  args = _parser().parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if args.memory_child:
    memory_child(args.memory_child, args.memory_batches or 10,
                 args.batch_size)
    return 0
  parts = _split(args.parts)
  unknown = set(parts) - set(PARTS)
  if unknown:
    print("Unknown parts %s; choose from %s." % (sorted(unknown),
                                                 ",".join(PARTS)))
    return 2
  sizes = dict(QUICK if args.quick else FULL)
  for key in ("repeats", "input_seconds", "train_seconds", "memory_batches"):
    if getattr(args, key) is not None:
      sizes[key] = getattr(args, key)
  datasets = _split(args.datasets) if args.datasets else (
      ["dummy_data"] if args.quick else list(DEFAULT_DATASETS))

  import absl.logging  # pylint: disable=g-import-not-at-top
  absl.logging.set_verbosity(absl.logging.ERROR)
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.logging.set_verbosity(tf.logging.ERROR)
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top,unused-import

  load_start = os.getloadavg()
  start = time.time()
  info = machine_info()
  command = " ".join(["python -m evaluation.benchmark"] +
                     list(sys.argv[1:] if argv is None else argv))
  report = _Report()
  report.section("Machine")
  for line in _machine_lines(info, load_start, command):
    report.note(line)
  input_rates = {}
  if "input" in parts:
    _run_input(report, datasets, args, sizes, input_rates)
  if "train" in parts:
    _run_train(report, args, sizes, "cpu", input_rates)
    if info["gpus"]:
      _run_train(report, args, sizes, "gpu", input_rates)
  if "memory" in parts:
    _run_memory(report, datasets, args, sizes)
  if "metrics" in parts:
    _run_metrics(report, args)
  report.section("Run")
  report.note("- load average at end: %.2f %.2f %.2f" % os.getloadavg())
  report.note("- wall time: %.0f s" % (time.time() - start))
  if args.output:
    with open(args.output, "w") as f:
      f.write("\n".join(report.lines).strip() + "\n")
    print("Wrote %s" % args.output)
  return 0


if __name__ == "__main__":
  sys.exit(main())
