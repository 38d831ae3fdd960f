"""Portable mode's cost: training steps/s and metric seconds, with and without.

Portable mode (`sbd_plugin.portable`) is a set of environment variables read
when the libraries load, so each mode runs in processes of its own:
- training: one child per mode (train_settings' children: dlib's VAE
  train_op per decoder, constant batch), timed round by round (A B A B ...);
- metric: one fresh child per mode and round computes the metric on a fixed
  random linear representation (metric_speed), alternating modes; its time
  excludes the start-up.
The ratios are medians of per-round ratios (portable / default, steps/s;
default / portable, metric seconds: below 1x means slower). The children also
report the losses after the same steps and the metric's scores: the mode
changes the arithmetic, so they may differ from the default's.
"""
import json
import statistics
import subprocess
import sys

from evaluation.benchmark import formatting
from evaluation.benchmark import harness
from evaluation.benchmark import metric_speed
from evaluation.benchmark import train_settings
from sbd_plugin import portable

MODES = (
    train_settings.Setting("default", "plugin default (oneDNN on, threads: "
                           "one per core)", {}),
    train_settings.Setting("portable", "portable mode (SBD_PORTABLE=1)",
                           portable.environment({})),
)
_MARK = "@@portable_metric "


def metric_child(spec_json):
  """Runs in a fresh process: the metric once, prints seconds and scores."""
  spec = json.loads(spec_json)
  seconds, scores = metric_speed._run_metric(  # pylint: disable=protected-access
      spec["metric"], spec["dataset"], spec["quick"], spec["bindings"])
  from sbd_plugin import machine  # pylint: disable=g-import-not-at-top
  print(_MARK + json.dumps({"seconds": seconds,
                            "scores": {k: float(v) for k, v in scores.items()},
                            "portable": portable.record()["on"],
                            "onednn": machine.onednn_enabled()}), flush=True)


def _metric_once(mode, spec):
  """One child of `mode` computing the metric; its report (dict)."""
  proc = subprocess.run(
      [sys.executable, "-m", "evaluation.benchmark", "--portable-metric-child",
       json.dumps(spec)], cwd=train_settings._REPO,  # pylint: disable=protected-access
      env=train_settings.child_env(mode), capture_output=True, text=True,
      timeout=3600, check=False)
  for line in proc.stdout.splitlines():
    if line.startswith(_MARK):
      return json.loads(line[len(_MARK):])
  tail = [l for l in proc.stderr.splitlines() if l.strip()]
  raise RuntimeError("metric child (%s) failed: %s" % (
      mode.key, tail[-1] if tail else "exit %d" % proc.returncode))


def measure_metric(metric, dataset, quick, bindings, rounds):
  """Seconds of `metric` per mode, alternating modes round by round.

  Returns:
    Dict from mode key to the list of the children's reports.
  """
  harness.dataset(dataset)  # Build the cache once, before the children.
  spec = {"metric": metric, "dataset": dataset, "quick": quick,
          "bindings": list(bindings)}
  results = {mode.key: [] for mode in MODES}
  for _ in range(rounds):
    for mode in MODES:
      results[mode.key].append(_metric_once(mode, spec))
  return results


def report_portable_cost(report, decoders, dataset, batch_size, sizes, metric,
                         metric_dataset, quick, bindings=()):
  """Measures and reports the portable part.

  Args:
    report: formatting.Report to print to.
    decoders: Keys of harness.DECODERS.
    dataset: Dataset of the training.
    batch_size: Training batch size.
    sizes: train_settings' sizes (rounds, train_seconds, train_min_steps,
      warmup_steps, check_steps); `rounds` is also the metric's.
    metric: Name from metric_speed.METRICS.
    metric_dataset: Dataset of the metric.
    quick: Whether the metric runs at --quick sizes.
    bindings: Extra gin bindings of the metric.
  """
  default, mode = MODES
  report.section("Portable mode's cost: training %s batch %d, metric %s on "
                 "%s%s" % (dataset, batch_size, metric, metric_dataset,
                           " (--quick sizes)" if quick else ""))
  report.note("portable mode: " + " ".join(
      "%s=%s" % kv for kv in sorted(mode.env.items())))
  trained = train_settings.measure_settings(decoders, dataset, batch_size,
                                            sizes, MODES)
  rows = []
  for decoder in decoders:
    base_rounds = trained[default.key]["rounds"][decoder]
    ours = trained[mode.key]["rounds"][decoder]
    if not base_rounds or not ours:
      rows.append(["train %s" % decoder, "failed", "failed", "n/a"])
      continue
    rows.append([
        "train %s (steps/s)" % decoder,
        formatting.format_rate(statistics.median(r[0] for r in base_rounds)),
        formatting.format_rate(statistics.median(r[0] for r in ours)),
        formatting.format_ratio(train_settings._median_ratio(  # pylint: disable=protected-access
            ours, base_rounds))])
  timed = measure_metric(metric, metric_dataset, quick, bindings,
                         sizes["rounds"])
  base_s = [r["seconds"] for r in timed[default.key]]
  ours_s = [r["seconds"] for r in timed[mode.key]]
  rows.append(["%s (seconds)" % metric, "%.2f" % statistics.median(base_s),
               "%.2f" % statistics.median(ours_s),
               formatting.format_ratio(statistics.median(
                   b / o for b, o in zip(base_s, ours_s)))])
  report.table(["what", default.label, mode.label,
                "portable vs default (speed)"], rows)
  report.note("medians over %d rounds; the ratio is the median of per-round "
              "ratios of speed (steps/s, or 1/seconds): below 1x, portable "
              "mode is slower." % sizes["rounds"])
  for key in (default.key, mode.key):
    ready = trained[key]["ready"]
    if ready:
      report.note("%s: oneDNN %s, intra-op %s, inter-op %s (0: one per core)"
                  % (key, ready["onednn"], ready["intra"], ready["inter"]))
    else:
      report.note("%s training failed: %s" % (key, trained[key]["error"]))
  for decoder in decoders:
    a, b = (trained[k]["ready"] for k in (default.key, mode.key))
    if a and b:
      x, y = a["decoders"][decoder], b["decoders"][decoder]
      report.note("%s: loss after %d steps default %r, portable %r "
                  "(%s); variables %s vs %s" % (
                      decoder, len(x["losses"]), x["losses"][-1],
                      y["losses"][-1], "identical" if x["losses"] ==
                      y["losses"] else "differ",
                      x["variables"], y["variables"]))
  scores = {key: timed[key][0]["scores"] for key in timed}
  same_each = all(r["scores"] == timed[key][0]["scores"]
                  for key in timed for r in timed[key])
  report.note("%s scores: default %s; portable %s; each mode the same in "
              "every round: %s" % (metric, scores[default.key],
                                   scores[mode.key],
                                   "yes" if same_each else "NO"))
