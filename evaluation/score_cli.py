"""sbd_score: dlib's metrics for an ONNX encoder, written where dlib_evaluate writes them.

  sbd_score --model encoder.onnx --dataset colored_sprites \\
      --metrics mig,factor_vae,dci --output out/my_model [--seed 0] \\
      [--batch-size 64] [--input-layout nhwc|nchw]

The model gets the dataset's observations (float32 in [0, 1], NHWC, or NCHW
with --input-layout nchw) and its first output, one vector per image, is the
representation. Each metric runs through dlib's own code with the study's
metric configs (gin_configs/metrics/<metric>.gin; --metric-config-dir for
others, --metric-binding to change a setting) and its results go to
<output>/<metric>, as `dlib_evaluate --output_dir <output>/<metric>` writes
them; `dlib_aggregate_results --result_file_pattern
'<output>/*/results/aggregate/evaluation.json'` reads them. Metrics already
finished in <output> are kept; a folder holding another model's scores is
refused. The model, metric names, configs and dataset are checked before any
metric starts.
"""
import argparse
import sys

from evaluation import metrics as metrics_lib

EXIT_BAD_INPUT = 2


def _parser():
  from sbd_plugin.scoring import api  # pylint: disable=g-import-not-at-top
  from sbd_plugin.scoring import onnx_model  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog="sbd_score", description=__doc__.split("\n", 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  parser.add_argument("--model", required=True, help="the encoder, an .onnx "
                      "file; its first output is the representation")
  parser.add_argument("--dataset", required=True,
                      help="dlib dataset name (dataset.name)")
  parser.add_argument("--metrics", default=",".join(api.DEFAULT_METRICS),
                      help="comma-separated metrics (default: %(default)s)")
  parser.add_argument("--output", required=True,
                      help="output folder; each metric goes to "
                      "<output>/<metric>")
  parser.add_argument("--seed", type=int, default=0,
                      help="evaluation.random_seed of every metric "
                      "(default 0, as the study configs)")
  parser.add_argument("--batch-size", type=int, default=64,
                      help="most images the model runs at once (default 64)")
  parser.add_argument("--input-layout", choices=onnx_model.LAYOUTS,
                      default="nhwc", help="the model's input layout; nchw "
                      "for models exported from PyTorch (default nhwc)")
  parser.add_argument("--metric-binding", "--metric-bindings",
                      dest="metric_bindings", action="append", default=[],
                      help="gin binding applied after each metric's config, "
                      "e.g. 'mig.num_train = 1000' (repeatable)")
  parser.add_argument("--dataset-binding", dest="dataset_bindings",
                      action="append", default=[],
                      help="gin binding of the dataset's parameters, e.g. "
                      "'colored_sprites.num_hue_bins = 4' (repeatable)")
  parser.add_argument("--metric-config-dir", default=None,
                      help="folder of <metric>.gin configs (default: "
                      "gin_configs/metrics, dlib's study settings)")
  parser.add_argument("--name", default=None,
                      help="the model's name in messages and its record "
                      "(default: the file name)")
  return parser


def result_lines(scores):
  """One line per table row of each metric: `label  value`."""
  lines = []
  for metric, results in scores.items():
    record = metrics_lib.METRICS.get(metric)
    for row in record.rows if record else ():
      value = results.get(row.result_key.split("evaluation_results.", 1)[1])
      lines.append("%-28s %s" % (row.label, "n/a" if value is None else
                                 "%.6g" % value))
  return lines


def main(argv=None):
  """Runs sbd_score.

  Returns:
    0 on success, 2 if the model, a metric, the dataset or the output folder
    is wrong (nothing was run).
  """
  args = _parser().parse_args(argv)
  # pylint: disable=g-import-not-at-top
  from sbd_plugin import scoring
  from sbd_plugin.scoring import api
  # pylint: enable=g-import-not-at-top
  metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]

  def log(line):
    print("[sbd_score] " + line, flush=True)

  try:
    scores = api.score_onnx(
        args.model, args.dataset, metrics, seed=args.seed,
        metric_bindings=args.metric_bindings,
        dataset_bindings=args.dataset_bindings, output_dir=args.output,
        batch_size=args.batch_size, input_layout=args.input_layout,
        name=args.name, config_dir=args.metric_config_dir, log=log)
  except (scoring.ModelError, scoring.RepresentationError,
          scoring.ScoringError) as e:
    print("sbd_score: error: %s" % e, file=sys.stderr)
    return EXIT_BAD_INPUT
  print("\n".join(result_lines(scores)))
  print("Results in %s/<metric>/results/aggregate/evaluation.json" %
        args.output)
  return 0


if __name__ == "__main__":
  sys.exit(main())
