"""Per-step overhead of dlib's trainer, measured with models of almost no compute.

Usage (oneDNN off: with it on, TensorFlow 2.15 crashed on these 1-channel
graphs here, "double free or corruption"; a GPU run does not use oneDNN):

  TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES= python -m \
      evaluation.benchmark.trainer_overhead [--steps 400] [--warmup 50] \
      [--repeats 1] [--configs paper_broadcast_vae,...] [--full-size-saves]

For each of the paper's model configs (gin_configs/paper_*.gin) the encoder,
decoder and FactorVAE discriminator are shrunk to 1 channel / 1x1 kernels /
4 units (`TINY_BINDINGS`): the training graph keeps every op (the same
convolutions, dense layers, losses, Adam updates, summaries) while its FLOPs
fall from 5-35 GFLOP per step to a few MFLOP (on a CPU the 64x64 tensors of
the tiles, concats and element-wise ops still cost milliseconds; on a GPU
microseconds). Timed per config, on the same tiny graph:

  estimator  the study runner's trainer: `resumable_train.train_with_gin`
             (dlib's procedure: TPUEstimator(use_tpu=False), its
             MonitoredTrainingSession and hooks -- NaN check every step,
             LoggingTensorHook, step counter and summaries every 50/100
             steps -- plus the runner's checkpoint/progress hooks), timed by
             a hook appended to the runner's hooks, after warm-up.
  session    `sess.run(train_op)` in a plain tf.Session, same graph and the
             plugin's input (as evaluation.benchmark.train_speed builds it).
  no-op      `sess.run(tf.no_op())`: the floor of one session call.

Each is reported as wall ms per step (10th percentile / median / mean), CPU
ms per step of the whole process, and CPU ms per step of the main (Python)
thread. The last is the number that carries over to a GPU: it is the host
work between two steps that the GPU waits for (sess.run is synchronous), and
CPU time does not count the waiting a loaded machine adds. Also printed: the
nodes the executor runs per step (after grappler, from one traced step), the
executor's CPU cost per op (1,000 trivial scalar ops, grappler off), and with
--full-size-saves the time of one checkpoint save of the full-size models
(the runner saves every 1,000 steps). docs/gpu_time.md turns these into GPU
time estimates.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

CONFIGS = ("paper_broadcast_vae", "paper_deconv_vae",
           "paper_broadcast_factorvae", "paper_deconv_factorvae")

TINY_BINDINGS = [
    "paper_conv_encoder.num_channels = 1",
    "paper_conv_encoder.kernel_size = 1",
    "paper_conv_encoder.hidden_units = 4",
    "spatial_broadcast_decoder.num_channels = 1",
    "spatial_broadcast_decoder.kernel_size = 1",
    "spatial_broadcast_decoder.output_kernel_size = 1",
    "paper_deconv_decoder.num_channels = 1",
    "paper_deconv_decoder.kernel_size = 1",
    "paper_deconv_decoder.hidden_units = 4",
]
TINY_DISCRIMINATOR = ("discriminator.discriminator_fn = "
                      "@trainer_overhead_tiny_discriminator")

_REGISTERED = []


def _register_tiny_discriminator():
  """dlib's fc_discriminator (7 dense layers) with 4 units instead of 1000."""
  if _REGISTERED:
    return
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top

  @gin.configurable("trainer_overhead_tiny_discriminator", allowlist=[])
  def tiny_discriminator(input_tensor, is_training=True):
    del is_training
    net = tf.layers.flatten(input_tensor)
    for i in range(6):
      net = tf.layers.dense(net, 4, activation=tf.nn.leaky_relu,
                            name="d%d" % (i + 1))
    logits = tf.layers.dense(net, 2, activation=None, name="logits")
    return logits, tf.nn.softmax(logits)

  _REGISTERED.append(tiny_discriminator)


class _StepTimes(object):
  """A SessionRunHook recording perf_counter() after every step."""

  def __init__(self):
    import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
    outer = self

    class Hook(tf.train.SessionRunHook):

      def after_run(self, run_context, run_values):
        outer.times.append(time.perf_counter())
        outer.cpu_times.append(time.process_time())
        outer.thread_times.append(time.thread_time())

    self.times = []
    self.cpu_times = []
    self.thread_times = []
    self.hook = Hook()


def _config_files(config):
  from evaluation.benchmark import harness  # pylint: disable=g-import-not-at-top
  return [harness.gin_config_path(config + ".gin")]


def time_estimator(config, steps, warmup, bindings, every_steps=1000):
  """Seconds per step of the study runner's trainer on `config`.

  Args:
    config: Name of a gin config under gin_configs/ (without .gin).
    steps: Training steps (sess.run calls) to run.
    warmup: Steps left out at the start.
    bindings: Extra gin bindings (the tiny model's).
    every_steps: Checkpoint interval of the runner (checkpoints.every_steps).

  Returns:
    Dict from _summary.
  """
  from sbd_plugin.dlib_bridge import resumable_train  # pylint: disable=g-import-not-at-top
  timer = _StepTimes()
  original = resumable_train._checkpoint_hooks  # pylint: disable=protected-access

  def hooks_with_timer(*args, **kwargs):
    return original(*args, **kwargs) + [timer.hook]

  # FactorVAE's global step counts 2 per sess.run (two optimizers).
  factor = 2 if "factorvae" in config else 1
  model_dir = tempfile.mkdtemp(prefix="trainer_overhead_")
  resumable_train._checkpoint_hooks = hooks_with_timer  # pylint: disable=protected-access
  try:
    resumable_train.train_with_gin(
        os.path.join(model_dir, "model"), _config_files(config),
        list(bindings) + [
            "dataset.name = 'colored_sprites'",
            "model.training_steps = %d" % (steps * factor),
            "model.eval_steps = 1",
            "checkpoints.every_steps = %d" % (every_steps * factor),
            "checkpoints.every_seconds = 100000"])
  finally:
    resumable_train._checkpoint_hooks = original  # pylint: disable=protected-access
    shutil.rmtree(model_dir, ignore_errors=True)
  times, cpu = timer.times[warmup:], timer.cpu_times[warmup:]
  main = timer.thread_times[warmup:]
  return _summary([b - a for a, b in zip(times, times[1:])],
                  (cpu[-1] - cpu[0]) / (len(cpu) - 1),
                  (main[-1] - main[0]) / (len(main) - 1))


def _summary(deltas, cpu_per_step, main_per_step):
  """p10, median and mean of per-step seconds, and CPU seconds per step.

  On a loaded machine a step waits for a core now and then; the 10th
  percentile is the closest to a step on an idle core, CPU seconds per step
  (all the process's threads) the work done regardless of waiting.
  """
  deltas = sorted(deltas)
  return {"p10": deltas[len(deltas) // 10],
          "median": statistics.median(deltas),
          "mean": sum(deltas) / len(deltas), "max": deltas[-1],
          "steps": len(deltas), "cpu": cpu_per_step, "main": main_per_step}


def _session_graph(config, bindings, seed=0):
  """dlib's training graph of `config` with the plugin's input (TRAIN mode)."""
  import gin  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  from evaluation.benchmark import harness  # pylint: disable=g-import-not-at-top
  with harness.parsed_gin(_config_files(config), list(bindings) + [
      "dataset.name = 'colored_sprites'"]):
    model = gin.query_parameter("model.model").scoped_configurable_fn()
    batch_size = int(gin.query_parameter("model.batch_size"))
    data = named_data.get_named_ground_truth_data()
    graph = tf.Graph()
    with graph.as_default():
      tf.set_random_seed(seed)
      features = train._make_input_fn(data, seed)({"batch_size": batch_size})  # pylint: disable=protected-access
      tf.train.get_or_create_global_step()
      spec = model.model_fn(features, None, tf.estimator.ModeKeys.TRAIN,
                            {"batch_size": batch_size})
      init = tf.global_variables_initializer()
      noop = tf.no_op()
  return graph, spec.train_op, init, noop


def _graph_stats(graph):
  """Ops in the graph and trainable parameters."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  with graph.as_default():
    params = sum(int(np.prod(v.shape.as_list()))
                 for v in tf.trainable_variables())
  return len(graph.get_operations()), params


def time_session(config, steps, warmup, bindings):
  """Seconds per sess.run(train_op) and per sess.run(no_op), plain session."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  graph, train_op, init, noop = _session_graph(config, bindings)
  ops, params = _graph_stats(graph)
  with tf.Session(graph=graph) as sess:
    sess.run(init)
    result = {"ops": ops, "params": params}
    # Nodes the executor runs per step (after grappler), from one trace.
    metadata = tf.RunMetadata()
    sess.run(train_op, options=tf.RunOptions(
        trace_level=tf.RunOptions.FULL_TRACE), run_metadata=metadata)
    result["executed"] = len({node.node_name
                              for dev in metadata.step_stats.dev_stats
                              for node in dev.node_stats})
    for name, op in (("session", train_op), ("noop", noop)):
      for _ in range(warmup):
        sess.run(op)
      deltas, cpu_start = [], time.process_time()
      main_start = time.thread_time()
      for _ in range(steps):
        start = time.perf_counter()
        sess.run(op)
        deltas.append(time.perf_counter() - start)
      result[name] = _summary(deltas,
                              (time.process_time() - cpu_start) / steps,
                              (time.thread_time() - main_start) / steps)
  return result


def time_full_size_save(config, repeats=3):
  """Seconds of one checkpoint save of the full-size model, and its bytes."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  graph, _, init, _ = _session_graph(config, [])
  folder = tempfile.mkdtemp(prefix="trainer_overhead_ckpt_")
  try:
    with graph.as_default():
      saver = tf.train.Saver(max_to_keep=2)
    with tf.Session(graph=graph) as sess:
      sess.run(init)
      seconds = []
      for i in range(repeats):
        start = time.perf_counter()
        saver.save(sess, os.path.join(folder, "model.ckpt"), global_step=i)
        seconds.append(time.perf_counter() - start)
    size = sum(os.path.getsize(os.path.join(folder, f))
               for f in os.listdir(folder) if f.endswith(("-%d.data-00000-of-00001" % (repeats - 1),
                                                          "-%d.index" % (repeats - 1),
                                                          "-%d.meta" % (repeats - 1))))
    return min(seconds), size
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def _cell(summary):
  return "%.2f / %.2f / %.2f; CPU %.2f; main %.3f" % tuple(
      1e3 * summary[k] for k in ("p10", "median", "mean", "cpu", "main"))


def time_op_dispatch(num_ops=1000, runs=300):
  """CPU seconds per op of the executor, on a graph of trivial scalar ops.

  `num_ops` scalar additions in `num_ops / 10` independent chains of 10
  (an executor schedules them as it does a training graph's ops); the
  compute is nil, so the process's CPU time per run / num_ops is the
  executor's cost of one op (scheduling, kernel call, bookkeeping).

  Returns:
    Tuple (CPU seconds per op, wall seconds per op, main-thread CPU seconds
    per run).
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  graph = tf.Graph()
  with graph.as_default():
    x = tf.Variable(1.0)
    ends = []
    for _ in range(num_ops // 10):
      y = x
      for _ in range(10):
        y = y + 1.0
      ends.append(y)
    group = tf.group(*ends)
  config = tf.ConfigProto()
  # Grappler would fold the chains into few ops; the training graph's ops
  # are counted after grappler (executed_ops), so count these unfolded.
  config.graph_options.rewrite_options.disable_meta_optimizer = True
  with tf.Session(graph=graph, config=config) as sess:
    sess.run(tf.variables_initializer([x]))
    for _ in range(30):
      sess.run(group)
    wall, cpu, main = [], time.process_time(), time.thread_time()
    for _ in range(runs):
      start = time.perf_counter()
      sess.run(group)
      wall.append(time.perf_counter() - start)
    cpu = (time.process_time() - cpu) / runs
    main = (time.thread_time() - main) / runs
  wall.sort()
  return cpu / num_ops, wall[len(wall) // 10] / num_ops, main


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default=",".join(CONFIGS))
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--warmup", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=2,
                      help="Estimator runs per config; the fastest is kept.")
  parser.add_argument("--full-size-saves", action="store_true")
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  start = time.time()
  from sbd_plugin import dlib_bridge  # pylint: disable=g-import-not-at-top
  dlib_bridge.activate()
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.logging.set_verbosity(tf.logging.ERROR)
  _register_tiny_discriminator()
  print("load average at start: %s" % " ".join(
      "%.2f" % x for x in os.getloadavg()))
  per_op_cpu, per_op_wall, dispatch_main = time_op_dispatch()
  print("executor, 1000 trivial scalar ops: %.2f us CPU per op, %.2f us wall "
        "per op (p10), main thread %.3f ms per run" % (
            1e6 * per_op_cpu, 1e6 * per_op_wall, 1e3 * dispatch_main))
  print("ms per step: p10 / median / mean wall; CPU ms (all threads); "
        "main-thread CPU ms")
  print("| config | graph ops (executed per step) | estimator |"
        " session train_op | session no-op |"
        " estimator - session (p10 wall; main-thread CPU) |")
  print("|---|---|---|---|---|---|")
  for config in args.configs.split(","):
    bindings = TINY_BINDINGS + (
        [TINY_DISCRIMINATOR] if "factorvae" in config else [])
    estimators = [time_estimator(config, args.steps, args.warmup, bindings)
                  for _ in range(max(1, args.repeats))]
    est = min(estimators, key=lambda r: r["p10"])
    ses = time_session(config, args.steps, args.warmup, bindings)
    print("| %s | %d (%d) | %s | %s | %s | %.2f; %.3f |" % (
        config, ses["ops"], ses["executed"], _cell(est),
        _cell(ses["session"]), _cell(ses["noop"]),
        1e3 * (est["p10"] - ses["session"]["p10"]),
        1e3 * (est["main"] - ses["session"]["main"])))
    sys.stdout.flush()
  if args.full_size_saves:
    for config in args.configs.split(","):
      seconds, size = time_full_size_save(config)
      graph = _session_graph(config, [])[0]
      ops, params = _graph_stats(graph)
      print("full-size %s: %d ops, %d trainable parameters, checkpoint "
            "%.1f MB, save %.0f ms" % (config, ops, params, size / 1e6,
                                       1e3 * seconds))
  print("load average at end: %s; wall time %.0f s" % (
      " ".join("%.2f" % x for x in os.getloadavg()), time.time() - start))


if __name__ == "__main__":
  main()
