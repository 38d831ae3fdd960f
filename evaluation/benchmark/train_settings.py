"""Train settings benchmark: oneDNN, thread pools and XLA on the CPU.

Each setting runs in its own child process, because TensorFlow reads
TF_ENABLE_ONEDNN_OPTS and TF_XLA_FLAGS once, when it loads, and its thread
pools are process-wide. The children build dlib's VAE train_op for every
decoder (train_speed.build_train_graph, constant in-memory batch, the plugin's
seeded training as dlib_train runs it), train a few steps from the same seed
to compare the losses across settings, then wait for the parent. The parent
times them round by round (A B C A B C ...), one child at a time, so that a
change of the machine's load hits every setting alike.
"""
import collections
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from evaluation.benchmark import flops
from evaluation.benchmark import formatting
from evaluation.benchmark import harness
from sbd_plugin import machine as sbd_machine
from sbd_plugin import portable

ONEDNN = "TF_ENABLE_ONEDNN_OPTS"
INTRA = "TF_NUM_INTRAOP_THREADS"
INTER = "TF_NUM_INTEROP_THREADS"
XLA = "TF_XLA_FLAGS"
# Auto-clustering of every op TensorFlow can compile; CPU clustering needs
# --tf_xla_cpu_global_jit besides the level (tf.function's jit_compile does
# not apply: dlib's graph runs in a tf.compat.v1.Session).
XLA_FLAGS = "--tf_xla_auto_jit=2 --tf_xla_cpu_global_jit"

Setting = collections.namedtuple("Setting", ["key", "label", "env"])

# The first is the baseline of the ratios. An env value None removes the
# variable, so that TensorFlow's default applies (threads: one per core).
SETTINGS = (
    Setting("off", "oneDNN off", {ONEDNN: "0"}),
    Setting("on", "oneDNN on (plugin default)", {ONEDNN: "1"}),
    # The same setting again in another process: the noise floor of the
    # ratios, and the run-to-run reproducibility check.
    Setting("on_again", "oneDNN on, 2nd process", {ONEDNN: "1"}),
    Setting("on_1thread", "oneDNN on, intra-op 1, inter-op 1",
            {ONEDNN: "1", INTRA: "1", INTER: "1"}),
    Setting("on_xla", "oneDNN on + XLA auto-clustering",
            {ONEDNN: "1", XLA: XLA_FLAGS}),
)
BASELINE = "off"

# The module's command line runs a child through this hidden flag.
_CHILD_MODULE = __package__
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
_MARK = "@@train_settings "


# --- the CPU's FP32 peak ---------------------------------------------------------


def fp32_flops_per_cycle(vendor, family, model, flags):
  """FP32 FLOPs per cycle and core of the CPU's widest FMA units.

  FLOPs/cycle = FMA pipes x FP32 lanes per vector x 2 (multiply and add).

  Args:
    vendor: /proc/cpuinfo vendor_id ("AuthenticAMD", "GenuineIntel").
    family: Integer CPU family.
    model: Integer CPU model.
    flags: Iterable of CPU feature flags.

  Returns:
    Tuple (FLOPs per cycle, how it was derived).
  """
  flags = set(flags)
  if vendor == "AuthenticAMD" and family == 0x17 and model < 0x30:
    return 16, "Zen/Zen+: 2 FMA pipes of 128 bits (AVX2 split in halves)"
  if vendor == "AuthenticAMD" and family in (0x17, 0x19):
    # Zen 4 (family 0x19) runs AVX-512 on the same two 256-bit pipes.
    gen = "Zen 2" if family == 0x17 else "Zen 3/Zen 4"
    return 32, "%s: 2 FMA pipes x 8 FP32 lanes (256 bits) x 2" % gen
  if vendor == "AuthenticAMD" and family == 0x1a and "avx512f" in flags:
    return 64, "Zen 5: 2 FMA pipes x 16 FP32 lanes (512 bits) x 2"
  if "avx512f" in flags:
    return 64, "AVX-512, assumed 2 FMA units x 16 FP32 lanes x 2"
  if "avx2" in flags and "fma" in flags:
    return 32, "AVX2+FMA, assumed 2 FMA units x 8 FP32 lanes x 2"
  if "avx" in flags:
    return 16, "AVX: 1 add + 1 multiply unit x 8 FP32 lanes"
  return 8, "SSE: 1 add + 1 multiply unit x 4 FP32 lanes"


def cpu_clock_mhz():
  """The clock the peak is computed from, and where it was read.

  Returns:
    Tuple (MHz, source): cpufreq's maximum (lscpu's "CPU max MHz") when the
    kernel exposes it, else /proc/cpuinfo's "cpu MHz" (under a hypervisor
    usually the nominal clock, not the boost clock).
  """
  try:
    with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
      return float(f.read().strip()) / 1000.0, "cpufreq max (lscpu max MHz)"
  except (OSError, ValueError):
    pass
  mhz = sbd_machine.read_proc("/proc/cpuinfo", "cpu MHz")
  return (float(mhz) if mhz else float("nan"),
          "/proc/cpuinfo cpu MHz (no cpufreq max MHz here)")


def cpu_fp32_peak():
  """The CPU's FP32 peak = cores x clock x FLOPs/cycle/core.

  Returns:
    Dict with cores, mhz, mhz_source, flops_per_cycle, how (the derivation
    of flops_per_cycle), family, model and peak (FLOP/s).
  """
  read = lambda key: sbd_machine.read_proc("/proc/cpuinfo", key)
  vendor = read("vendor_id") or ""
  family = int(read("cpu family") or 0)
  model = int(read("model\t") or 0)
  per_cycle, how = fp32_flops_per_cycle(vendor, family, model,
                                        sbd_machine.cpu_flags())
  mhz, source = cpu_clock_mhz()
  cores = len(os.sched_getaffinity(0))
  return {"cores": cores, "mhz": mhz, "mhz_source": source,
          "flops_per_cycle": per_cycle, "how": how, "family": family,
          "model": model, "peak": cores * mhz * 1e6 * per_cycle}


def profiled_model_flops(decoder, output_shape, num_latent=10):
  """Forward FLOPs of dlib's conv encoder plus `decoder` on one image.

  Args:
    decoder: A key of harness.DECODERS.
    output_shape: [height, width, channels] of the images.
    num_latent: Number of latent variables.

  Returns:
    Tuple (encoder FLOPs, decoder FLOPs), counted by TF's profiler.
  """
  return (flops.profiled_encoder_flops(output_shape, num_latent),
          flops.profiled_decoder_flops(decoder, output_shape, num_latent))


# --- the child: one setting, every decoder ------------------------------------------


def _emit(kind, payload):
  """Sends one protocol line to the parent (stdout may carry other text)."""
  sys.stdout.write(_MARK + kind + " " + json.dumps(payload) + "\n")
  sys.stdout.flush()


def _step_evidence(sess, train_op):
  """Runs one step and counts its oneDNN and XLA kernels.

  Args:
    sess: tf.Session.
    train_op: The train op.

  Returns:
    Dict: ops of the partition graphs that run, of which oneDNN ("_Mkl*")
    and XLA cluster launches (_XlaCompile / XlaLaunch).
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  meta = tf.RunMetadata()
  sess.run(train_op, options=tf.RunOptions(output_partition_graphs=True),
           run_metadata=meta)
  ops = [node.op for g in meta.partition_graphs for node in g.node]
  return {"ops": len(ops),
          "mkl_ops": sum(op.startswith("_Mkl") for op in ops),
          "xla_clusters": sum(op in ("_XlaCompile", "XlaLaunch")
                              for op in ops)}


def child_main(spec_json):
  """Runs in a fresh process: one setting (from the environment), all decoders.

  Builds each decoder's train_op, runs `check_steps` steps from the seed and
  reports their losses and a hash of the variables, warms up, then answers
  the parent's "time" requests until "quit".

  Args:
    spec_json: JSON dict with decoders, dataset, batch_size, seed,
      check_steps and warmup_steps.
  """
  spec = json.loads(spec_json)
  import tensorflow as tf2  # pylint: disable=g-import-not-at-top
  # Belt and braces: TensorFlow reads the env vars too; the API makes the
  # counts visible to get_*_parallelism_threads.
  if os.environ.get(INTRA):
    tf2.config.threading.set_intra_op_parallelism_threads(
        int(os.environ[INTRA]))
  if os.environ.get(INTER):
    tf2.config.threading.set_inter_op_parallelism_threads(
        int(os.environ[INTER]))
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.logging.set_verbosity(tf.logging.ERROR)
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top,unused-import
  from evaluation.benchmark import train_speed  # pylint: disable=g-import-not-at-top
  from sbd_plugin.dlib_bridge import reproducibility  # pylint: disable=g-import-not-at-top
  seed = spec["seed"]
  sessions, ready = {}, {
      "onednn": sbd_machine.onednn_enabled(),
      "intra": tf2.config.threading.get_intra_op_parallelism_threads(),
      "inter": tf2.config.threading.get_inter_op_parallelism_threads(),
      "decoders": {}}
  # What dlib_train does around training with the plugin: seeded generators
  # (Keras draws the initialisers' seeds from Python's) and op determinism.
  with reproducibility.reproducible_training(seed):
    for decoder in spec["decoders"]:
      random.seed(seed)  # Each decoder from the seed, whatever ran before.
      np.random.seed(seed)
      graph, train_op, init = train_speed.build_train_graph(
          decoder, spec["dataset"], spec["batch_size"], "constant", seed)
      loss = graph.get_tensor_by_name("loss:0")
      variables = graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES)
      sess = tf.Session(graph=graph, config=harness.session_config("cpu"))
      sess.run(init)
      losses = [float(sess.run([train_op, loss])[1])
                for _ in range(spec["check_steps"])]
      digest = hashlib.sha256()
      for value in sess.run(variables):
        digest.update(np.ascontiguousarray(value).tobytes())
      evidence = _step_evidence(sess, train_op)
      for _ in range(spec["warmup_steps"]):
        sess.run(train_op)
      sessions[decoder] = (sess, train_op)
      ready["decoders"][decoder] = dict(
          evidence, losses=losses, variables=digest.hexdigest()[:16])
    _emit("ready", ready)
    for line in sys.stdin:
      words = line.split()
      if not words or words[0] == "quit":
        break
      # time <decoder> <min seconds> <min steps>
      sess, train_op = sessions[words[1]]
      min_seconds, min_steps = float(words[2]), int(words[3])
      steps, cpu0, start = 0, time.process_time(), time.perf_counter()
      while True:
        sess.run(train_op)
        steps += 1
        wall = time.perf_counter() - start
        if steps >= min_steps and wall >= min_seconds:
          break
      _emit("timed", {"steps": steps, "wall": wall,
                      "cpu": time.process_time() - cpu0})
  for sess, _ in sessions.values():
    sess.close()


# --- the parent --------------------------------------------------------------------


def child_env(setting):
  """The environment of a setting's child: only the setting's choices.

  Every variable a setting may set (oneDNN, threads, XLA, portable mode's
  pins) is removed first, so the default applies unless the setting sets it.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  for key in (ONEDNN, INTRA, INTER, XLA, portable.ENV) + portable.NAMES:
    env.pop(key, None)
  env.update(setting.env)
  return env


class _Child(object):
  """A child process running one setting; talks over stdin/stdout."""

  def __init__(self, setting, spec):
    self.setting = setting
    env = child_env(setting)
    self.stderr = tempfile.TemporaryFile(mode="w+")
    self.proc = subprocess.Popen(
        [sys.executable, "-m", _CHILD_MODULE, "--train-settings-child",
         json.dumps(spec)], cwd=_REPO, env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=self.stderr, text=True, bufsize=1)
    self.ready = None
    self.error = None

  def receive(self, kind):
    """Returns the payload of the next `kind` line, or None if it died."""
    for line in self.proc.stdout:
      if line.startswith(_MARK + kind + " "):
        return json.loads(line[len(_MARK + kind) + 1:])
    self.proc.wait()
    self.stderr.seek(0)
    tail = [l for l in self.stderr.read().splitlines() if l.strip()]
    self.error = "exit %s: %s" % (self.proc.returncode,
                                  tail[-1] if tail else "no output")
    return None

  def time(self, decoder, min_seconds, min_steps):
    self.proc.stdin.write("time %s %r %d\n" % (decoder, min_seconds,
                                                min_steps))
    self.proc.stdin.flush()
    return self.receive("timed")

  def close(self):
    if self.proc.poll() is None:
      try:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
      except (OSError, subprocess.TimeoutExpired):
        self.proc.kill()
        self.proc.wait()
    self.stderr.close()


def measure_settings(decoders, dataset, batch_size, sizes, settings=SETTINGS,
                     seed=0):
  """Steps/s and losses of every setting, each in its own process.

  Args:
    decoders: Keys of harness.DECODERS.
    dataset: Dataset name.
    batch_size: Training batch size.
    sizes: Dict with rounds, train_seconds, train_min_steps, warmup_steps and
      check_steps.
    settings: Settings (see SETTINGS); the first is the ratios' baseline.
    seed: Seed of the weights, the noise and the constant batch.

  Returns:
    Dict from setting key to a dict with "ready" (the child's report: oneDNN,
    threads, per decoder losses, variable hash and kernel counts; None if
    it failed), "error" and "rounds": {decoder: [(steps/s, CPU s/step)]}.
  """
  harness.dataset(dataset)  # Build the cache once, before the children.
  spec = {"decoders": list(decoders), "dataset": dataset,
          "batch_size": batch_size, "seed": seed,
          "check_steps": sizes["check_steps"],
          "warmup_steps": sizes["warmup_steps"]}
  # Started together: their start-up is not timed.
  children = [_Child(setting, spec) for setting in settings]
  try:
    for child in children:
      child.ready = child.receive("ready")
    live = [child for child in children if child.ready]
    rounds = {child.setting.key: {d: [] for d in decoders}
              for child in children}
    for _ in range(sizes["rounds"]):
      for decoder in decoders:
        for child in live:
          if child.error:
            continue
          timed = child.time(decoder, sizes["train_seconds"],
                             sizes["train_min_steps"])
          if timed:
            rounds[child.setting.key][decoder].append(
                (timed["steps"] / timed["wall"], timed["cpu"] / timed["steps"]))
  finally:
    for child in children:
      child.close()
  return {child.setting.key: {"ready": child.ready, "error": child.error,
                              "rounds": rounds[child.setting.key]}
          for child in children}


def _relative(a, b):
  return abs(a - b) / abs(b) if b else float("nan")


def _median_ratio(rounds, base_rounds):
  """Median over rounds of the steps/s ratio within the same round."""
  pairs = [a[0] / b[0] for a, b in zip(rounds, base_rounds) if b[0] > 0]
  return statistics.median(pairs) if pairs else float("nan")


def report_train_settings(report, decoders, dataset, batch_size, sizes,
                          settings=SETTINGS):
  """Measures and reports the train_settings part.

  Args:
    report: formatting.Report to print to.
    decoders: Keys of harness.DECODERS.
    dataset: Dataset name.
    batch_size: Training batch size.
    sizes: Dict with rounds, train_seconds, train_min_steps, warmup_steps and
      check_steps.
    settings: Settings (see SETTINGS); the first is the ratios' baseline.
  """
  report.section("Training settings on CPU (oneDNN, threads, XLA): dlib "
                 "model_fn train_op, %s, batch %d, constant batch" % (
                     dataset, batch_size))
  peak = cpu_fp32_peak()
  report.note(
      "FP32 peak: %d cores x %.0f MHz (%s) x %d FLOP/cycle (family %#x model "
      "%#x, %s) = %.1f GFLOP/s" % (
          peak["cores"], peak["mhz"], peak["mhz_source"],
          peak["flops_per_cycle"], peak["family"], peak["model"], peak["how"],
          peak["peak"] / 1e9))
  shape = harness.dataset(dataset).observation_shape
  model_flops = {}
  for decoder in decoders:
    encoder, decoder_flops = profiled_model_flops(decoder, shape)
    model_flops[decoder] = encoder + decoder_flops
    report.note("forward FLOPs per image %s: %.1f M (encoder %.1f M + "
                "decoder %.1f M, tf profiler)" % (
                    decoder, model_flops[decoder] / 1e6, encoder / 1e6,
                    decoder_flops / 1e6))
  results = measure_settings(decoders, dataset, batch_size, sizes, settings)
  base = settings[0]
  rows, notes = [], []
  for decoder in decoders:
    base_rounds = results[base.key]["rounds"][decoder]
    for setting in settings:
      result = results[setting.key]
      rounds = result["rounds"][decoder]
      if not rounds:
        rows.append([decoder, setting.label, "failed"] + ["n/a"] * 7)
        continue
      rate = statistics.median(r[0] for r in rounds)
      cpu_step = statistics.median(r[1] for r in rounds)
      ratio = _median_ratio(rounds, base_rounds)
      step_flops = 3 * model_flops[decoder] * batch_size
      achieved = step_flops * rate
      # Per CPU second: what the process did while it had a core, which the
      # machine's other load changes much less than the wall-clock rate.
      per_cpu_second = step_flops / cpu_step
      rows.append([decoder, setting.label, formatting.format_rate(rate),
                   formatting.format_ratio(ratio) if setting != base else "1x",
                   "%.3f" % cpu_step, "%.2f" % (cpu_step * rate),
                   "%.1f" % (achieved / 1e9),
                   formatting.format_percent(achieved / peak["peak"]),
                   "%.1f" % (per_cpu_second / 1e9),
                   formatting.format_percent(
                       per_cpu_second * peak["cores"] / peak["peak"])])
      if setting != base:
        notes.append("ratio %s %s: %s (steps/s vs %s, median of %d rounds)" % (
            decoder, setting.key, formatting.format_ratio(ratio), base.key,
            len(rounds)))
  report.table(["decoder", "setting", "steps/s", "vs " + base.label,
                "CPU s/step", "cores busy", "GFLOP/s", "of FP32 peak",
                "GFLOP per CPU s", "of 1-core peak"], rows)
  for line in notes:
    report.note(line)
  report.note("steps/s and CPU s/step: medians over rounds; vs: median of the "
              "per-round ratios; cores busy = process CPU time / wall time; "
              "GFLOP/s = 3 x forward FLOPs x batch x steps/s; GFLOP per CPU "
              "s = 3 x forward FLOPs x batch / CPU s/step, against one "
              "core's peak (%.1f GFLOP/s)." % (
                  peak["peak"] / peak["cores"] / 1e9))
  _report_checks(report, decoders, settings, results, sizes["check_steps"])


def _report_checks(report, decoders, settings, results, steps):
  """Prints what each child ran with, and the equivalence of the losses."""
  base = settings[0]
  for setting in settings:
    result = results[setting.key]
    ready = result["ready"]
    if not ready:
      report.note("setting %s failed: %s" % (setting.key, result["error"]))
      continue
    report.note("setting %s: env %s; oneDNN %s; intra-op %s, inter-op %s "
                "(0 = default: one per core); %s" % (
                    setting.key, " ".join("%s=%s" % kv for kv in sorted(
                        setting.env.items())),
                    ready["onednn"], ready["intra"], ready["inter"],
                    "; ".join("%s: %d oneDNN and %d XLA cluster ops of %d, "
                              "variables after the check steps %s" % (
                                  d, e["mkl_ops"], e["xla_clusters"],
                                  e["ops"], e["variables"])
                              for d, e in ready["decoders"].items())))
  base_ready = results[base.key]["ready"]
  for decoder in decoders:
    for setting in settings[1:]:
      ready = results[setting.key]["ready"]
      if not ready or not base_ready:
        continue
      ours = ready["decoders"][decoder]["losses"]
      theirs = base_ready["decoders"][decoder]["losses"]
      # Step 1 is the forward pass from the same weights; later steps add
      # what the updates make of the first differences.
      report.note(
          "equivalence %s %s vs %s: loss of step %d %.7g vs %.7g, relative "
          "difference %.1e (step 1: %.1e; max over the %d steps %.1e)" % (
              decoder, setting.key, base.key, steps, ours[-1], theirs[-1],
              _relative(ours[-1], theirs[-1]), _relative(ours[0], theirs[0]),
              steps, max(_relative(a, b) for a, b in zip(ours, theirs))))
  # Same setting, two processes: bit for bit.
  first, again = results.get("on"), results.get("on_again")
  if first and again and first["ready"] and again["ready"]:
    for decoder in decoders:
      a, b = (r["ready"]["decoders"][decoder] for r in (first, again))
      report.note(
          "reproducible %s oneDNN on, two processes: losses of %d steps "
          "bit-identical: %s; variables identical: %s (%s)" % (
              decoder, steps, "yes" if a["losses"] == b["losses"] else "NO",
              "yes" if a["variables"] == b["variables"] else "NO",
              a["variables"]))
