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
           DCI runs twice: dlib's sequential loop (n_jobs=1) and the
           plugin's parallel fits (default workers), with the speed-up and
           a check that the scores are identical.
  scoring  (not in the default parts; ~10-20 min on 2 cores, mostly DCI)
           images/s of an ONNX encoder with dlib's conv_encoder layers run
           by ONNX Runtime (what sbd_score runs) and of the same encoder as
           the TF-Hub module dlib_evaluate reads, side by side on the same
           batches (--batch-size), then the total time of sbd_score with MIG,
           FactorVAE score and DCI at dlib's study settings on that file
           (dataset: --metric-dataset).
  portable (not in the default parts; ~5 min) portable mode's cost
           (sbd_plugin.portable): steps/s of the train_op per decoder and
           the seconds of one metric (--metrics' first, default mig) with and
           without the mode, each mode in its own processes, alternating
           round by round, and the ratios.
  train_settings (not in the default parts; ~10 min at full sizes)
           steps/s of the train_op per decoder with oneDNN off / on, with
           intra-op and inter-op threads 1 and with XLA auto-clustering, each
           setting in its own process, timed round by round; the ratios to
           oneDNN off, the achieved FLOP/s against the CPU's FP32 peak
           (cores x clock x FLOPs/cycle), and the losses after the same
           steps from the same seed (equivalence across settings,
           bit-identity of two oneDNN-on processes).

Rates are the best of --repeats measurements (the machine may be shared);
the variants of a comparison are measured round-robin so load drifts hit all
of them alike. The load average is printed at the start and the end.
"""
import argparse
import os
import sys
import time

from evaluation.benchmark import formatting
from evaluation.benchmark import harness
from evaluation.benchmark import input_speed
from evaluation.benchmark import machine
from evaluation.benchmark import memory
from evaluation.benchmark import metric_speed
from evaluation.benchmark import portable_cost
from evaluation.benchmark import scoring_speed
from evaluation.benchmark import train_settings
from evaluation.benchmark import train_speed

DEFAULT_DATASETS = ("colored_sprites", "object_in_room", "dummy_data")
PARTS = ("input", "train", "memory", "metrics", "scoring", "train_settings",
         "portable")
# train_settings starts a process per setting and takes ~10 minutes.
DEFAULT_PARTS = ("input", "train", "memory", "metrics")

# Sizes of the full and of the --quick run.
FULL = dict(input_seconds=2.0, train_seconds=5.0, train_min_steps=3,
            warmup_steps=2, memory_batches=10, repeats=3)
QUICK = dict(input_seconds=0.2, train_seconds=0.2, train_min_steps=2,
             warmup_steps=1, memory_batches=2, repeats=1)
# train_settings: rounds of timing, seconds per setting and round, and the
# steps from the seed whose losses are compared across settings.
SETTINGS_FULL = dict(rounds=5, train_seconds=4.0, train_min_steps=2,
                     warmup_steps=2, check_steps=20)
SETTINGS_QUICK = dict(rounds=2, train_seconds=0.1, train_min_steps=1,
                      warmup_steps=1, check_steps=3)


def _parser():
  parser = argparse.ArgumentParser(
      prog="sbd_benchmark", description=__doc__.split("\n", 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("--quick", action="store_true",
                      help="tiny sizes (smoke run); default datasets: "
                      "dummy_data only")
  parser.add_argument("--parts", default=",".join(DEFAULT_PARTS),
                      help="comma-separated subset of %s (default: %s)" % (
                          ",".join(PARTS), ",".join(DEFAULT_PARTS)))
  parser.add_argument("--datasets", default=None,
                      help="datasets of the input and memory parts (default: "
                      "%s)" % ",".join(DEFAULT_DATASETS))
  parser.add_argument("--batch-size", type=int, default=64,
                      help="input and scoring parts: images per batch")
  parser.add_argument("--train-dataset", default=None,
                      help="dataset of the train part (default: "
                      "colored_sprites; --quick: dummy_data)")
  parser.add_argument("--train-batch-size", type=int, default=None,
                      help="training batch (default: model.batch_size of the "
                      "gin configs, 16; --quick: 2)")
  parser.add_argument("--decoders", default=",".join(harness.DECODERS),
                      help="decoders of the train part")
  parser.add_argument("--no-stock-train", action="store_true",
                      help="train part: skip the run with dlib's stock input")
  parser.add_argument("--metrics", default=None,
                      help="metrics to time, from %s (default: mig,factor_vae:"
                      " DCI's gradient boosted trees, timed sequential and "
                      "parallel, take longer at study settings than the rest "
                      "of the run on a 2-core machine, and ~12 s even with "
                      "--quick)" %
                      ",".join(metric_speed.METRICS))
  parser.add_argument("--metric-binding", action="append", default=[],
                      help="extra gin binding of the metrics part, e.g. "
                      "'dci.num_train = 5000' (repeatable)")
  parser.add_argument("--metric-dataset", default=None,
                      help="dataset of the metrics part (default: "
                      "colored_sprites; --quick: dummy_data)")
  parser.add_argument("--repeats", type=int, default=None,
                      help="measurements per number, best kept (default 3)")
  parser.add_argument("--input-seconds", type=float, default=None)
  parser.add_argument("--train-seconds", type=float, default=None)
  parser.add_argument("--memory-batches", type=int, default=None)
  parser.add_argument("--settings-rounds", type=int, default=None,
                      help="train_settings: timing rounds (default 5; "
                      "--quick: 2)")
  parser.add_argument("--check-steps", type=int, default=None,
                      help="train_settings: steps from the seed whose losses "
                      "are compared (default 20; --quick: 3)")
  parser.add_argument("--gpu-peak-tflops", type=float, default=None,
                      help="peak FP32 TFLOP/s of the GPU (default: table)")
  parser.add_argument("--output", default=None,
                      help="also write the results as Markdown to this file")
  # The memory part runs itself in a fresh process through this flag.
  parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
  # So does each setting of the train_settings part.
  parser.add_argument("--train-settings-child", default=None,
                      help=argparse.SUPPRESS)
  # And each metric run of the portable part.
  parser.add_argument("--portable-metric-child", default=None,
                      help=argparse.SUPPRESS)
  return parser


def _split(text):
  return [t.strip() for t in text.split(",") if t.strip()]


def _run_train(report, args, sizes, devices, input_rates):
  """Resolves the train part's defaults, then reports it per device."""
  decoders = _split(args.decoders)
  dataset = args.train_dataset or ("dummy_data" if args.quick else
                                   "colored_sprites")
  batch_size = args.train_batch_size or (
      2 if args.quick else train_speed.train_batch_size_from_gin(decoders[0]))
  kinds = train_speed.INPUT_KINDS
  if args.no_stock_train:
    kinds = tuple(kind for kind in kinds if kind != "stock")
  for device in devices:
    train_speed.report_train(report, decoders, dataset, batch_size, device,
                             sizes, kinds, input_rates, args.gpu_peak_tflops)


def _settings_sizes(args):
  """train_settings' sizes after the flags."""
  sizes = dict(SETTINGS_QUICK if args.quick else SETTINGS_FULL)
  if args.settings_rounds is not None:
    sizes["rounds"] = args.settings_rounds
  if args.check_steps is not None:
    sizes["check_steps"] = args.check_steps
  if args.train_seconds is not None:
    sizes["train_seconds"] = args.train_seconds
  return sizes


def _training_inputs(args):
  """(decoders, dataset, batch size) of the parts that train side by side."""
  decoders = _split(args.decoders)
  dataset = args.train_dataset or ("dummy_data" if args.quick else
                                   "colored_sprites")
  batch_size = args.train_batch_size or (
      2 if args.quick else train_speed.train_batch_size_from_gin(decoders[0]))
  return decoders, dataset, batch_size


def _run_portable(report, args):
  """Resolves the portable part's defaults, then reports it."""
  decoders, dataset, batch_size = _training_inputs(args)
  metric = _split(args.metrics)[0] if args.metrics else "mig"
  portable_cost.report_portable_cost(
      report, decoders, dataset, batch_size, _settings_sizes(args), metric,
      args.metric_dataset or ("dummy_data" if args.quick else
                              "colored_sprites"), args.quick,
      args.metric_binding)


def _run_train_settings(report, args):
  """Resolves the train_settings part's defaults, then reports it."""
  decoders, dataset, batch_size = _training_inputs(args)
  train_settings.report_train_settings(report, decoders, dataset, batch_size,
                                       _settings_sizes(args))


def main(argv=None):
  """Runs the benchmark command.

  Args:
    argv: Command-line flags without the program name (default: sys.argv).

  Returns:
    Exit status: 0, or 2 for an unknown part.
  """
  args = _parser().parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  if args.memory_child:
    memory.memory_child(args.memory_child, args.memory_batches or 10,
                        args.batch_size)
    return 0
  if args.train_settings_child:
    train_settings.child_main(args.train_settings_child)
    return 0
  if args.portable_metric_child:
    portable_cost.metric_child(args.portable_metric_child)
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
  info = machine.machine_info()
  command = " ".join(["python -m evaluation.benchmark"] +
                     list(sys.argv[1:] if argv is None else argv))
  report = formatting.Report()
  report.section("Machine")
  for line in machine.machine_lines(info, load_start, command):
    report.note(line)
  input_rates = {}
  if "input" in parts:
    input_rates = input_speed.report_input(report, datasets, args.batch_size,
                                           sizes)
  if "train" in parts:
    devices = ["cpu"] + (["gpu"] if info["gpus"] else [])
    _run_train(report, args, sizes, devices, input_rates)
  if "memory" in parts:
    memory.report_memory(report, datasets, args.batch_size,
                         sizes["memory_batches"])
  if "metrics" in parts:
    metrics = (_split(args.metrics) if args.metrics else
               list(metric_speed.DEFAULT_METRICS))
    dataset = args.metric_dataset or ("dummy_data" if args.quick else
                                      "colored_sprites")
    metric_speed.report_metrics(report, metrics, dataset, args.quick,
                                args.metric_binding)
  if "scoring" in parts:
    scoring_speed.report_scoring(
        report, args.metric_dataset or ("dummy_data" if args.quick else
                                        "colored_sprites"),
        args.batch_size, args.quick, sizes["input_seconds"],
        sizes["repeats"])
  if "train_settings" in parts:
    _run_train_settings(report, args)
  if "portable" in parts:
    _run_portable(report, args)
  report.section("Run")
  report.note("- load average at end: %.2f %.2f %.2f" % os.getloadavg())
  report.note("- wall time: %.0f s" % (time.time() - start))
  if args.output:
    with open(args.output, "w") as f:
      f.write("\n".join(report.lines).strip() + "\n")
    print("Wrote %s" % args.output)
  return 0
