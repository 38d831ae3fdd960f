"""One Markdown report per study: results table, comparison tables, figures.

Assembles only: results come from evaluation.aggregate, comparison tables
from evaluation.tables, numbers from trained models from evaluation.analysis
and the figures from evaluation.figures; paths from evaluation.layout.
Everything is derived from the study folder, so a report can be rebuilt at any
time (`sbd_study report`), also for a partly finished or failed study.
"""
import json
import os

from evaluation import aggregate
from evaluation import analysis
from evaluation import figures
from evaluation import layout
from evaluation import study as study_lib
from evaluation import tables


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


def _model_figures(hub_model, dataset, model, decoder, study, output_dir):
  """Traversal and latent-geometry sections for one trained model."""
  lines = []
  options = study.figures
  fig_dir = layout.figures_dir(output_dir)
  data = analysis.load_dataset(dataset, _bindings_for(study, dataset))
  tag = "%s-%s-%s" % (dataset, model, decoder)
  if options.get("traversals", True):
    path = figures.plot_traversals(
        analysis.traversal_images(hub_model, data),
        os.path.join(fig_dir, "traversals-%s.png" % tag))
    lines += _figure_section(
        "Traversals: %s, %s, %s decoder" % (dataset, model, decoder), path,
        output_dir, "Each row sweeps one latent from -2 to +2 around a "
        "seed image; latents ordered by average posterior variance "
        "(most informative first), non-coding latents dropped.")
  geometry = options.get("latent_geometry")
  if geometry:
    factor_x, factor_y = [_factor_index(data, f) for f in geometry]
    path = figures.plot_latent_geometry(
        analysis.latent_geometry(hub_model, data, factor_x, factor_y),
        os.path.join(fig_dir, "geometry-%s.png" % tag))
    lines += _figure_section(
        "Latent geometry: %s, %s decoder" % (model, decoder), path,
        output_dir, "A grid of lines in (%s, %s) with the other factors "
        "fixed, and its image in the two latents of lowest posterior "
        "variance. A disentangled model keeps the grid up to an affine "
        "map." % tuple(geometry))
  return lines


def build_report(study, output_dir, outcomes=None):
  """Aggregates results, writes tables and figures and the Markdown report.

  Building the model figures loads datasets with `analysis.load_dataset`,
  which clears the process-wide gin config.

  Args:
    study: evaluation.study.Study.
    output_dir: The study folder.
    outcomes: Optional list of runner.Outcome of the last execution.

  Returns:
    Path of the written report.md.
  """
  frame = aggregate.tidy_results(study, output_dir)
  csv_path, versions_path = aggregate.write_results(frame, output_dir)
  fig_dir = layout.figures_dir(output_dir)
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
    error_log = os.path.relpath(layout.error_path(
        layout.run_dir(output_dir, "<id>")), output_dir)
    lines += ["Unfinished or failed runs (see `%s`):" % error_log, ""]
    errors = {o.run_id: o.error for o in (outcomes or [])}
    lines += ["- `%s` %s" % (r.run_id, errors.get(r.run_id, ""))
              for r in failed] + [""]
  if not len(frame):
    lines += ["No finished runs yet."]
    return _write(output_dir, lines)

  table = tables.comparison_table(frame, study.baseline, study.primary_metrics)
  paths = tables.write_tables(table, layout.comparison_prefix(output_dir))
  secondary = [m for m in layout.metric_labels(study.metrics)
               if m not in study.primary_metrics]
  lines += ["## Spatial Broadcast vs baseline", "",
            "Per dataset, model, beta and metric: median [interquartile range] "
            "over seeds per decoder (n = seeds); the difference of medians "
            "against the baseline with its bootstrap percentile %d%% CI "
            "(%d resamples, seed %d); P(sup) = U / (n1 n2), the probability "
            "that a seed of the decoder beats one of the baseline (ties count "
            "half; 0.5 = no effect); p, the per-cell two-sided Mann-Whitney U "
            "p-value; and p Holm, corrected with Holm's method over all cells "
            "of the primary metrics (%s) and separately over those of the "
            "secondary ones (%s). Cells without a test (baseline rows, fewer "
            "than 2 seeds) are not counted; cells whose seeds all tie count "
            "with p = 1." % (
                round(100 * tables.CONFIDENCE_LEVEL), tables.N_RESAMPLES,
                tables.BOOTSTRAP_SEED, ", ".join(study.primary_metrics),
                ", ".join(secondary) or "none"), ""]
  with open([p for p in paths if p.endswith(".md")][0]) as f:
    lines += [f.read().strip(), ""]
  seeds = len({r.seed for r in study.runs})
  primary_tests = tables.num_tests(table, tables.PRIMARY)
  if primary_tests:
    needed = tables.seeds_needed(primary_tests)
    floor = tables.min_exact_p(seeds, seeds)
    lines += ["With %d seeds per decoder the smallest possible two-sided "
              "exact Mann-Whitney p-value is 2 / C(%d, %d) = %.2g (all seeds "
              "of one decoder above all of the other's); Holm multiplies the "
              "smallest of the study's %d primary tests by %d, so p Holm < "
              "%g needs at least %d seeds per decoder%s." % (
                  seeds, 2 * seeds, seeds, floor, primary_tests,
                  primary_tests, tables.ALPHA, needed,
                  " (this study has %d)" % seeds if seeds < needed else
                  ", which this study has"), ""]
  lines += ["Also as " + ", ".join("[%s](%s)" % (
      os.path.splitext(p)[1][1:].upper(), os.path.relpath(p, output_dir))
                                   for p in paths) + ".", ""]

  lines += ["## Figures", ""]
  path = figures.plot_metric_distributions(
      frame, os.path.join(fig_dir, "metric_distributions.png"),
      study.baseline, layout.metric_labels(study.metrics))
  lines += _figure_section("Metric distributions", path, output_dir,
                           "Each point is one seed; the bar marks the median.")
  path = figures.plot_rate_distortion(
      frame, os.path.join(fig_dir, "rate_distortion.png"), study.baseline)
  lines += _figure_section(
      "Rate-distortion", path, output_dir,
      "Reconstruction loss against KL (rate) and against MIG, one point per "
      "run, lines through the per-beta medians.")
  for dataset, model, decoder, model_dir in _first_models(frame):
    with analysis.load_model(model_dir) as hub_model:  # Loaded once per model.
      lines += _model_figures(hub_model, dataset, model, decoder, study,
                              output_dir)
  heldout = study.figures.get("heldout")
  if heldout:
    seen, unseen = heldout
    errors = analysis.heldout_errors(frame, seen, unseen,
                                     _bindings_for(study, seen))
    errors.to_csv(layout.heldout_errors_csv(output_dir), index=False)
    path = figures.plot_heldout_generalisation(
        errors, os.path.join(fig_dir, "heldout_generalisation.png"),
        study.baseline)
    lines += _figure_section(
        "Generalisation to the held-out region", path, output_dir,
        "Mean reconstruction error on samples from the training region "
        "(`%s`) and from the held-out region (`%s`), per run." % (seen,
                                                                  unseen))
  return _write(output_dir, lines)


def _write(output_dir, lines):
  path = layout.report_path(output_dir)
  with open(path, "w") as f:
    f.write("\n".join(lines).rstrip() + "\n")
  return path
