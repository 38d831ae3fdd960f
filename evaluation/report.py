"""One Markdown report per study: results table, comparison tables, figures.

Everything is derived from the study folder, so a report can be rebuilt at any
time (`sbd_study report`), also for a partly finished or failed study.
"""
import json
import os

import gin
import pandas as pd

from evaluation import aggregate
from evaluation import figures
from evaluation import study as study_lib
from evaluation import tables


def load_dataset(name, bindings=()):
  """Builds a dataset the way dlib's steps do, from its name and bindings."""
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    gin.parse_config(list(bindings) + ["dataset.name = '%s'" % name])
    return named_data.get_named_ground_truth_data()
  finally:
    gin.clear_config()


def _factor_index(data, factor):
  """Index of a factor given by name (dataset.factor_names) or index."""
  if isinstance(factor, int):
    return factor
  names = list(getattr(data, "factor_names", []))
  if factor not in names:
    raise study_lib.StudyError("figures.latent_geometry names factor %r, but "
                               "the dataset's factors are %s." % (factor,
                                                                  names))
  return names.index(factor)


def _first_models(frame):
  """(dataset, model, decoder) -> model_dir of its lowest-seed run."""
  firsts = frame.sort_values("seed").drop_duplicates(
      ["dataset", "model", "decoder"])
  return [(r.dataset, r.model, r.decoder, r.model_dir)
          for r in firsts.itertuples()]


def _bindings_for(study, dataset):
  for run in study.runs:
    if run.dataset == dataset:
      return run.dataset_bindings
  return ()


def heldout_errors(study, frame, seen, heldout, num_samples=512):
  """Mean reconstruction error per run on seen and held-out data.

  Returns:
    DataFrame with columns decoder, seed, split, error.
  """
  # Only models trained on the seen data have a held-out region to test.
  runs = frame[frame["dataset"] == seen].drop_duplicates("run_id")
  data = {split: load_dataset(name, _bindings_for(study, seen))
          for split, name in (("seen", seen), ("held-out", heldout))}
  rows = []
  for run in runs.itertuples():
    with figures.load_model(run.model_dir) as model:  # Loaded once per run.
      for split, dataset in data.items():
        errors = figures.reconstruction_errors(model, dataset, num_samples,
                                               seed=0)
        rows.append({"decoder": run.decoder, "seed": run.seed,
                     "split": split, "error": float(errors.mean())})
  return pd.DataFrame(rows)


def _figure_section(title, path, report_dir, caption):
  rel = os.path.relpath(path, report_dir)
  return ["### %s" % title, "", caption, "", "![%s](%s)" % (title, rel), ""]


def _versions_line(versions_path):
  with open(versions_path) as f:
    v = json.load(f)["aggregated_with"]
  keys = ("python", "tensorflow", "tensorflow-probability", "tensorflow-hub",
          "gin-config", "numpy", "scikit-learn", "scipy",
          "disentanglement-lib", "sbd_plugin")
  return ", ".join("%s %s" % (k, v.get(k)) for k in keys)


def _model_figures(hub_model, dataset, model, decoder, study, fig_dir,
                   output_dir):
  """Traversal and latent-geometry sections for one trained model."""
  lines = []
  options = study.figures
  data = load_dataset(dataset, _bindings_for(study, dataset))
  tag = "%s-%s-%s" % (dataset, model, decoder)
  if options.get("traversals", True):
    path = figures.plot_traversals(
        hub_model, data, os.path.join(fig_dir, "traversals-%s.png" % tag))
    lines += _figure_section(
        "Traversals: %s, %s, %s decoder" % (dataset, model, decoder), path,
        output_dir, "Each row sweeps one latent from -2 to +2 around a "
        "seed image; latents ordered by average posterior variance "
        "(most informative first), non-coding latents dropped.")
  geometry = options.get("latent_geometry")
  if geometry:
    factor_x, factor_y = [_factor_index(data, f) for f in geometry]
    path = figures.plot_latent_geometry(
        hub_model, data, os.path.join(fig_dir, "geometry-%s.png" % tag),
        factor_x, factor_y)
    lines += _figure_section(
        "Latent geometry: %s, %s decoder" % (model, decoder), path,
        output_dir, "A grid of lines in (%s, %s) with the other factors "
        "fixed, and its image in the two latents of lowest posterior "
        "variance. A disentangled model keeps the grid up to an affine "
        "map." % tuple(geometry))
  return lines


def build_report(study, output_dir, outcomes=None):
  """Aggregates results, writes tables and figures and the Markdown report.

  Args:
    study: evaluation.study.Study.
    output_dir: The study folder.
    outcomes: Optional list of runner.Outcome of the last execution.

  Returns:
    Path of the written report.md.
  """
  frame = aggregate.tidy_results(study, output_dir)
  csv_path, versions_path = aggregate.write_results(frame, output_dir)
  fig_dir = os.path.join(output_dir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  lines = ["# Study `%s`" % study.name, ""]
  if study.description:
    lines += [study.description.strip(), ""]
  finished = frame["run_id"].nunique() if len(frame) else 0
  failed = [r for r in study.runs if not study_lib.is_finished(output_dir, r)]
  lines += ["%d of %d runs finished. Results table (one row per run and "
            "metric): [%s](%s). Library versions of every run: [%s](%s)." % (
                finished, len(study.runs), os.path.basename(csv_path),
                os.path.relpath(csv_path, output_dir),
                os.path.basename(versions_path),
                os.path.relpath(versions_path, output_dir)), ""]
  lines += ["Stack: " + _versions_line(versions_path) + ".", ""]
  if failed:
    lines += ["Unfinished or failed runs (see `runs/<id>/error.log`):", ""]
    errors = {o.run_id: o.error for o in (outcomes or [])}
    lines += ["- `%s` %s" % (r.run_id, errors.get(r.run_id, ""))
              for r in failed] + [""]
  if not len(frame):
    lines += ["No finished runs yet."]
    return _write(output_dir, lines)

  table = tables.comparison_table(frame)
  paths = tables.write_tables(table, os.path.join(output_dir, "results",
                                                  "comparison"))
  lines += ["## Spatial Broadcast vs baseline", "",
            "Per dataset, model and metric: median [interquartile range] over "
            "seeds per decoder, the difference of medians against the "
            "baseline, and the two-sided Mann-Whitney U p-value (n = seeds "
            "per decoder; with few seeds no difference can be significant).",
            ""]
  with open([p for p in paths if p.endswith(".md")][0]) as f:
    lines += [f.read().strip(), ""]
  lines += ["Also as " + ", ".join("[%s](%s)" % (
      os.path.splitext(p)[1][1:].upper(), os.path.relpath(p, output_dir))
                                   for p in paths) + ".", ""]

  lines += ["## Figures", ""]
  path = figures.plot_metric_distributions(
      frame, os.path.join(fig_dir, "metric_distributions.png"))
  lines += _figure_section("Metric distributions", path, output_dir,
                           "Each point is one seed; the bar marks the median.")
  path = figures.plot_rate_distortion(
      frame, os.path.join(fig_dir, "rate_distortion.png"))
  lines += _figure_section(
      "Rate-distortion", path, output_dir,
      "Reconstruction loss against KL (rate) and against MIG, one point per "
      "run, lines through the per-beta medians.")
  options = study.figures
  for dataset, model, decoder, model_dir in _first_models(frame):
    with figures.load_model(model_dir) as hub_model:  # Loaded once per model.
      lines += _model_figures(hub_model, dataset, model, decoder, study,
                              fig_dir, output_dir)
  heldout = options.get("heldout")
  if heldout:
    errors = heldout_errors(study, frame, heldout[0], heldout[1])
    errors.to_csv(os.path.join(output_dir, "results", "heldout_errors.csv"),
                  index=False)
    path = figures.plot_heldout_generalisation(
        errors, os.path.join(fig_dir, "heldout_generalisation.png"))
    lines += _figure_section(
        "Generalisation to the held-out region", path, output_dir,
        "Mean reconstruction error on samples from the training region "
        "(`%s`) and from the held-out region (`%s`), per run." % tuple(
            heldout))
  return _write(output_dir, lines)


def _write(output_dir, lines):
  path = os.path.join(output_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines).rstrip() + "\n")
  return path
