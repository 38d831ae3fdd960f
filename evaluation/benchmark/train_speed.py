"""Train benchmark: steps/s of dlib's VAE train_op per decoder and input."""
import contextlib

import numpy as np

from evaluation.benchmark import flops
from evaluation.benchmark import formatting
from evaluation.benchmark import harness
from evaluation.benchmark import machine

INPUT_KINDS = ("constant", "plugin", "stock")


@contextlib.contextmanager
def _model_gin(decoder, bindings=()):
  """Parses the plugin's model config of `decoder` for the block.

  Args:
    decoder: A key of harness.DECODERS.
    bindings: Extra gin bindings, applied after the config.

  Yields:
    None.
  """
  # dlib's train module registers `model` and imports vae, architectures,
  # losses and optimizers, whose configurables (`encoder`, `vae`, ...) the
  # configs bind. dlib_train has them by being that module; here it must be
  # imported before parsing, whatever part of the benchmark ran before.
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top,unused-import
  config = harness.gin_config_path(harness.DECODERS[decoder])
  with harness.parsed_gin([config], list(bindings)):
    yield


def train_batch_size_from_gin(decoder):
  """Returns model.batch_size of the plugin's config of `decoder`."""
  import gin  # pylint: disable=g-import-not-at-top
  with _model_gin(decoder):
    return int(gin.query_parameter("model.batch_size"))


def build_train_graph(decoder, dataset_name, batch_size, input_kind, seed=0):
  """Builds dlib's VAE training graph as its trainer does.

  The model comes from the plugin's gin config (gin_configs/*_vae.gin) with
  `dataset.name` overridden; its model_fn is called in TRAIN mode (what
  TPUEstimator does with use_tpu=False) and the EstimatorSpec's train_op is
  returned. Summaries and the logging hook of the spec are not run.

  Args:
    decoder: A key of harness.DECODERS.
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
  with _model_gin(decoder, [
      "dataset.name = %r" % dataset_name,
      "input_pipeline.batched = %s" % (input_kind != "stock")]):
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
  return graph, spec.train_op, init


def measure_train(decoder, dataset_name, batch_size, device, sizes,
                  input_kinds=INPUT_KINDS):
  """Steps/s of dlib's train_op per input kind, measured round-robin.

  Args:
    decoder: A key of harness.DECODERS.
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
    sess = tf.Session(graph=graph, config=harness.session_config(device))
    sess.run(init)
    for _ in range(sizes["warmup_steps"]):
      sess.run(train_op)
    sessions[kind] = (sess, train_op)
  return harness.best_rates(sessions, sizes["repeats"], sizes["train_seconds"],
                            sizes["train_min_steps"])


def report_train(report, decoders, dataset, batch_size, device, sizes,
                 input_kinds=INPUT_KINDS, input_rates=None,
                 gpu_peak_tflops=None):
  """Measures and reports the train part on one device.

  Args:
    report: formatting.Report to print to.
    decoders: Keys of harness.DECODERS.
    dataset: Dataset name.
    batch_size: Training batch size.
    device: "cpu" or "gpu".
    sizes: Dict with train_seconds, train_min_steps, warmup_steps, repeats.
    input_kinds: Input kinds to measure (see build_train_graph).
    input_rates: Optional dict from dataset name to the input part's
      images/s ("plugin", "stock"), for the input's busy time per step.
    gpu_peak_tflops: FP32 peak of the GPU (default: flops' table).
  """
  report.section("Training steps/s on %s: dlib model_fn train_op, %s, "
                 "batch %d" % (device.upper(), dataset, batch_size))
  input_rates = input_rates or {}
  rows, notes = [], []
  shape = harness.dataset(dataset).observation_shape
  peak = None
  if device == "gpu":
    names = machine.gpu_names()
    peak = gpu_peak_tflops or flops.peak_tflops(names[0] if names else "")
    report.note("GPU: %s; FP32 peak %s TFLOP/s" % (
        ", ".join(names), peak if peak else "unknown (use --gpu-peak-tflops)"))
  for decoder in decoders:
    rates = measure_train(decoder, dataset, batch_size, device, sizes,
                          input_kinds)
    overheads = {kind: formatting.input_overhead(rates[kind],
                                                 rates["constant"])
                 for kind in ("plugin", "stock") if kind in rates}
    # Training is ~3x the forward pass (forward + two backward products).
    decoder_flops = 3 * batch_size * flops.profiled_decoder_flops(decoder,
                                                                  shape)
    achieved = decoder_flops * rates["plugin"]
    row = [decoder, formatting.format_rate(rates["constant"])]
    for kind, overhead in overheads.items():
      row += [formatting.format_rate(rates[kind]),
              formatting.format_percent(overhead)]
      notes.append("input overhead %s %s (%s): %s" % (
          device, decoder, kind, formatting.format_percent(overhead)))
    row += ["%.1f" % (achieved / 1e9)]
    if device == "gpu":
      row += [formatting.format_percent(achieved / (peak * 1e12)) if peak
              else "n/a"]
    rows.append(row)
    if dataset in input_rates:
      # Busy time of the input per step (from the input part's rates): an
      # upper bound of the overhead that is not buried in timing noise.
      for kind in ("plugin", "stock"):
        notes.append("input busy time per step %s %s (%s): %s" % (
            device, decoder, kind, formatting.format_percent(
                rates["constant"] * batch_size / input_rates[dataset][kind])))
  header = ["decoder", "constant steps/s"]
  for kind in ("plugin", "stock"):
    if kind in input_kinds:
      header += ["%s steps/s" % kind, "%s overhead" % kind]
  header += ["decoder GFLOP/s"]
  if device == "gpu":
    header += ["of peak"]
  report.table(header, rows)
  for line in notes:
    report.note(line)
  report.note("overhead = 1 - steps/s(real input) / steps/s(constant batch); "
              "decoder GFLOP/s = 3 x forward FLOPs (tf profiler) x batch x "
              "steps/s with the plugin's input.")
