"""One Markdown report per study: results table, comparison tables, figures.

Assembles only: results come from evaluation.aggregate, comparison tables
from evaluation.tables, numbers from trained models from evaluation.analysis,
latent_traversals and latent_geometry, the figures from evaluation.figures and
latent_figures; paths from evaluation.layout.
Everything is derived from the study folder, so a report can be rebuilt at any
time (`sbd_study report`), also for a partly finished or failed study.
"""
import contextlib
import json
import os

import pandas as pd

from evaluation import aggregate
from evaluation import analysis
from evaluation import figures
from evaluation import latent_figures
from evaluation import latent_geometry
from evaluation import latent_traversals
from evaluation import layout
from evaluation import study as study_lib
from evaluation import tables

# dlib metrics that sample factors with the dataset's sample_factors and then
# overwrite one factor across a batch (beta_vae.py, factor_vae.py): on a
# held-out training set some of their images fall in the held-out region.
_METRICS_FIXING_A_FACTOR = ("beta_vae", "factor_vae")


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


def _shown_runs(frame, baseline):
  """The runs whose models the report draws, per dataset and model.

  One run per decoder; all decoders of a dataset and model show the same
  beta and seed where they can: the (beta, seed) that most decoders
  finished, the lowest beta and then seed first. A decoder without it shows
  its own lowest (beta, seed) run.

  Args:
    frame: Tidy results DataFrame.
    baseline: The study's baseline decoder, listed first.

  Returns:
    List of ((dataset, model), [run, ...]), each run a namedtuple row of the
    frame (decoder, seed, beta, model_dir, ...), in decoder order.
  """
  runs = frame.drop_duplicates("run_id").sort_values(
      ["beta", "seed"], na_position="last", kind="stable")
  shown = []
  for key, group in runs.groupby(["dataset", "model"], sort=True):
    counts = group.groupby(["beta", "seed"], dropna=False, sort=False)[
        "decoder"].nunique()
    beta, seed = counts.idxmax()  # the first of the largest counts
    same_beta = (group["beta"].isna() if pd.isna(beta) else
                 group["beta"] == beta)
    same = same_beta & (group["seed"] == seed)
    chosen = group[same].drop_duplicates("decoder")
    others = group[~group["decoder"].isin(chosen["decoder"])]
    chosen = {r.decoder: r for r in chosen.itertuples()}
    for run in others.drop_duplicates("decoder").itertuples():
      chosen[run.decoder] = run
    shown.append((key, [chosen[d] for d in
                        tables.decoder_order(list(chosen), baseline)]))
  return shown


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


def _run_tag(run):
  return "seed %d, β=%s" % (run.seed, tables.format_beta(run.beta,
                                                         "unknown"))


def _geometry_caption(geometry, factors, region_name):
  """What the latent-geometry figure shows, with the latents it picked."""
  g = geometry
  names = ["`%s`" % f for f in factors]
  picked = ", ".join(
      "%s axis z%d (R² = %.2f with %s)" % (axis, latent, score, name)
      for axis, latent, score, name in zip(("x", "y"), g.latents, g.scores,
                                           names))
  text = ("A grid of lines in (%s, %s) with the other factors fixed, and "
          "its image in the two latents that track these factors best: %s. "
          "R² is the fraction of a latent's variance over the grid's points "
          "(the spread of its posterior means plus its average posterior "
          "variance) that a line in the factor index explains; near 0, no "
          "latent tracks the factor. A disentangled model keeps the grid up "
          "to an affine map." % (names[0], names[1], picked))
  if g.in_region is not None and g.region_box is not None:
    text += (" Hollow points are grid points in the held-out region of `%s` "
             "(red box), which training never saw; they are rendered and "
             "encoded like the others." % region_name)
  elif g.in_region is not None:
    text += (" The held-out region of `%s` does not meet this grid's "
             "plane." % region_name)
  return text


def _model_figures(data, dataset, model, runs, study, output_dir):
  """Traversal and latent-geometry sections for one dataset and model.

  Args:
    data: The dataset (GroundTruthData) the runs were trained on.
    dataset: Its name.
    model: The model name.
    runs: The shown run per decoder (see `_shown_runs`).
    study: evaluation.study.Study.
    output_dir: The study folder.

  Returns:
    List of Markdown lines.
  """
  lines = []
  options = study.figures
  fig_dir = layout.figures_dir(output_dir)
  heldout = options.get("heldout")
  # The held-out box of the pair's training dataset (its `region`).
  region = getattr(data, "region", None) if (
      heldout and dataset == heldout[0]) else None
  geometry = options.get("latent_geometry")
  with contextlib.ExitStack() as stack:
    models = {run.decoder: stack.enter_context(  # Loaded once per model.
        analysis.load_model(run.model_dir)) for run in runs}
    traversals = (latent_traversals.traversal_comparison(models, data)
                  if options.get("traversals", True) else {})
    for run in runs:
      tag = "%s-%s-%s" % (dataset, model, run.decoder)
      if run.decoder in traversals:
        path = latent_figures.plot_traversals(
            traversals[run.decoder],
            os.path.join(fig_dir, "traversals-%s.png" % tag))
        lines += _figure_section(
            "Traversals: %s, %s, %s decoder" % (dataset, model, run.decoder),
            path, output_dir, "Each row sweeps one latent from -2 to +2 "
            "around a seed image; latents ordered by average posterior "
            "variance (most informative first), non-coding latents dropped. "
            "Model of the run with %s." % _run_tag(run))
      if geometry:
        factor_x, factor_y = [_factor_index(data, f) for f in geometry]
        g = latent_geometry.latent_geometry(models[run.decoder], data,
                                            factor_x, factor_y,
                                            region=region)
        path = latent_figures.plot_latent_geometry(
            g, os.path.join(fig_dir, "geometry-%s.png" % tag))
        lines += _figure_section(
            "Latent geometry: %s, %s, %s decoder" % (dataset, model,
                                                    run.decoder), path,
            output_dir, _geometry_caption(g, geometry, dataset) +
            " Model of the run with %s." % _run_tag(run))
  if len(traversals) >= 2:
    path = latent_figures.plot_traversal_comparison(
        traversals, os.path.join(fig_dir, "traversals_compared-%s-%s.png" %
                                 (dataset, model)))
    lines += _figure_section(
        "Traversals side by side: %s, %s" % (dataset, model), path,
        output_dir, "The same input image (the first image the traversals "
        "above sample) through each decoder's model: %s. Each model's "
        "latents are ordered by its own average posterior variance, so rows "
        "at the same height need not code the same factor." % "; ".join(
            "%s: %s" % (run.decoder, _run_tag(run)) for run in runs))
  return lines


def _heldout_section(study, frame, output_dir):
  """The held-out generalisation figure and what the metrics there mean."""
  seen, unseen = study.figures["heldout"]
  errors = analysis.heldout_errors(frame, seen, unseen,
                                   _bindings_for(study, seen))
  errors.to_csv(layout.heldout_errors_csv(output_dir), index=False)
  title = "Generalisation to the held-out region"
  if not len(errors):
    return ["### %s" % title, "", "No finished runs on `%s`." % seen, ""]
  path = figures.plot_heldout_generalisation(
      errors, os.path.join(layout.figures_dir(output_dir),
                           "heldout_generalisation.png"), study.baseline)
  fixing = [m for m in study.metrics if m in _METRICS_FIXING_A_FACTOR]
  caption = (
      "Mean reconstruction error per run on samples from the training "
      "region (`%s`, seen) and from the held-out region (`%s`), one panel "
      "per model and β; bars at the median over seeds, one point per seed "
      "(numbers: [%s](%s)). The disentanglement metrics of the `%s` rows in "
      "the tables above are computed on the seen region: the study's "
      "worker (`evaluation/worker.py`) binds `dataset.name` to each run's "
      "own dataset for postprocessing and evaluation, so dlib's metrics "
      "sample from `%s`, whose factor sampling never lands in the held-out "
      "region." % (
          seen, unseen, os.path.basename(layout.heldout_errors_csv(
              output_dir)),
          os.path.relpath(layout.heldout_errors_csv(output_dir), output_dir),
          seen, seen))
  if fixing:
    caption += (" Exception: %s %s one factor across a batch of such "
                "samples, so a few of their images fall in the held-out "
                "region." % (" and ".join("`%s`" % m for m in fixing),
                             "fix" if len(fixing) > 1 else "fixes"))
  return _figure_section(title, path, output_dir, caption)


def _lower_is_better_note(labels):
  """Says which of the study's metric rows (`labels`) are better when lower."""
  return ("Higher is better for every metric except %s: these unsupervised "
          "scores measure statistical dependence between the latents, so "
          "lower means more independent latents (there a negative "
          "difference and P(sup) < 0.5 favour the decoder)." %
          ", ".join("`%s`" % label for label in labels))


def _colour_factors_note(datasets):
  """How the metrics' colour factors relate to the paper's, if it applies."""
  from sbd_plugin.datasets import colored_sprites  # pylint: disable=g-import-not-at-top
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top
  # The plugin's datasets whose colour is continuous and scored by bin.
  binned = [d for d in datasets if d in registry.PLUGIN_DATASETS and
            issubclass(registry.PLUGIN_DATASETS.load(d),
                       colored_sprites.ColoredSprites)]
  if not binned:
    return []
  return ["Factors: colour in %s is continuous, as in the paper: each "
          "sprite's hue, saturation and value are drawn uniformly inside the "
          "HSV box of its colour bin (docs/datasets/sprites.md). dlib's "
          "metrics need discrete factors, so they score the bin indices "
          "`hue`, `saturation` and `value` (4 bins each unless the study "
          "binds `colored_sprites.num_hue_bins` and the like) beside `shape`, "
          "`scale`, `orientation`, `posX` and `posY`. The paper's colour "
          "factors are the continuous HSV coordinates and it does not say "
          "how it discretised them for MIG, so the colour factors' share of "
          "these scores is comparable only between studies with the same "
          "bins." % ", ".join("`%s`" % d for d in binned), ""]


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
  lines += _colour_factors_note(dict.fromkeys(r.dataset for r in study.runs))
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
            "that a seed of the decoder scores higher than one of the baseline "
            "(ties count half; 0.5 = no effect); p, the per-cell two-sided "
            "Mann-Whitney U "
            "p-value; and p Holm, corrected with Holm's method over all cells "
            "of the primary metrics (%s) and separately over those of the "
            "secondary ones (%s). Cells without a test (baseline rows, fewer "
            "than 2 seeds) are not counted; cells whose seeds all tie count "
            "with p = 1." % (
                round(100 * tables.CONFIDENCE_LEVEL), tables.N_RESAMPLES,
                tables.BOOTSTRAP_SEED, ", ".join(study.primary_metrics),
                ", ".join(secondary) or "none")]
  lower = [m for m in layout.metric_labels(study.metrics)
           if m in tables.LOWER_IS_BETTER]
  if lower:
    lines[-1] += " " + _lower_is_better_note(lower)
  lines += [""]
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
  lines += _figure_section(
      "Metric distributions", path, output_dir,
      "Each point is one seed; the bar marks the median." +
      (" " + _lower_is_better_note(lower) if lower else ""))
  # External models have no training losses here: not on these axes.
  path = figures.plot_rate_distortion(
      frame[~frame["decoder"].isin(study.external_names)],
      os.path.join(fig_dir, "rate_distortion.png"), study.baseline)
  lines += _figure_section(
      "Rate-distortion", path, output_dir,
      "Reconstruction loss against KL (rate) and against MIG, one point per "
      "run, lines through the per-beta medians.")
  model_figures = (study.figures.get("traversals", True) or
                   study.figures.get("latent_geometry"))
  # External models have no trained dlib model to draw from.
  trained = frame[~frame["decoder"].isin(study.external_names)]
  for (dataset, model), runs in (_shown_runs(trained, study.baseline)
                                 if model_figures and len(trained) else []):
    data = analysis.load_dataset(dataset, _bindings_for(study, dataset))
    lines += _model_figures(data, dataset, model, runs, study, output_dir)
  if study.figures.get("heldout"):
    lines += _heldout_section(study, frame, output_dir)
  return _write(output_dir, lines)


def _write(output_dir, lines):
  path = layout.report_path(output_dir)
  with open(path, "w") as f:
    f.write("\n".join(lines).rstrip() + "\n")
  return path
