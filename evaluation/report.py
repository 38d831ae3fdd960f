"""One Markdown report per study: results table, comparison tables, figures.

Assembles only: results come from evaluation.aggregate, comparison tables
from evaluation.tables, the claims' endpoints (rate-distortion per beta,
held-out gap, gaps between datasets) from evaluation.endpoints, numbers
from trained models from evaluation.analysis, latent_traversals and
latent_geometry, the figures from evaluation.figures and latent_figures;
paths from evaluation.layout.
Everything is derived from the study folder, so a report can be rebuilt at any
time (`sbd_study report`), also for a partly finished or failed study. It
never replaces results with fewer (`aggregate.check_nothing_lost`): a folder
without `runs/` (a published study) is reported from its results/results.csv,
which is then not rewritten, and the figures drawn from trained models are
kept with their captions. Hand-written text lives in findings.md beside
report.md: the report includes it and never writes it.
"""
import contextlib
import dataclasses
import os
import re

import pandas as pd

from evaluation import aggregate
from evaluation import analysis
from evaluation import endpoints
from evaluation import figure_runs
from evaluation import figures
from evaluation import latent_figures
from evaluation import latent_geometry
from evaluation import latent_traversals
from evaluation import layout
from evaluation import markdown
from evaluation import metrics as metrics_lib
from evaluation import provenance_report
from evaluation import study as study_lib
from evaluation import tables
from sbd_plugin import atomic


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


def _bindings_for(study, dataset):
  for run in study.runs:
    if run.dataset == dataset:
      return run.dataset_bindings
  return ()


def _figure_section(title, path, report_dir, caption):
  rel = os.path.relpath(path, report_dir)
  return ["### %s" % title, "", caption, "", "![%s](%s)" % (title, rel), ""]


def _versions_line(versions_path):
  v = (atomic.read_json(versions_path) or {}).get("aggregated_with")
  if not v:
    return "not recorded (no %s)" % os.path.basename(versions_path)
  keys = ("python", "tensorflow", "tensorflow-probability", "tensorflow-hub",
          "gin-config", "numpy", "scikit-learn", "scipy",
          "disentanglement-lib", "sbd_plugin")
  return ", ".join("%s %s" % (k, v.get(k)) for k in keys)


def _findings_lines(output_dir):
  """The hand-written findings.md beside report.md, included as it is."""
  path = layout.findings_path(output_dir)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [f.read().strip(), ""]


_SECTION = re.compile(r"^### ", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


def _kept_figure_sections(output_dir, redrawn):
  """The figures this report cannot redraw, with their last captions.

  A study folder without runs/ has no trained models: the figures drawn from
  them stay as they are, and so do their sections of the last report.md
  (caption included), in their order there; a figure the last report does
  not show gets a plain caption.

  Args:
    output_dir: The study folder.
    redrawn: Paths of the figures this report draws again.

  Returns:
    List of Markdown lines.
  """
  fig_dir = layout.figures_dir(output_dir)
  old = ""
  if os.path.exists(layout.report_path(output_dir)):
    with open(layout.report_path(output_dir)) as f:
      old = f.read()
  sections = {}
  for block in _SECTION.split(old)[1:]:
    block = block.split("\n## ")[0]  # a section ends at the next chapter
    image = _IMAGE.search(block)
    if image:
      path = os.path.normpath(os.path.join(output_dir, image.group(1)))
      sections.setdefault(path, ("### " + block).strip().split("\n"))
  redrawn = {os.path.normpath(p) for p in redrawn}
  figures_here = sorted(
      os.path.normpath(os.path.join(fig_dir, name))
      for name in (os.listdir(fig_dir) if os.path.isdir(fig_dir) else [])
      if name.endswith(".png"))
  lines = []
  for path in [p for p in sections if p in figures_here] + [
      p for p in figures_here if p not in sections]:
    if path in redrawn:
      continue
    if path in sections:
      lines += sections[path] + [""]
    else:
      name = os.path.splitext(os.path.basename(path))[0]
      lines += _figure_section(name, path, output_dir, "Drawn from the "
                               "trained models when they were here.")
  return lines


def _report_source(study, output_dir):
  """The results to report, checked and written; where they came from.

  Returns:
    Tuple (frame, from_runs, wide): from_runs is False for a folder without
    runs/, reported from its results/results.csv (which is not rewritten);
    wide is dlib's aggregated table (results/dlib_results.json's there),
    empty if the folder has none.

  Raises:
    StudyError: if the folder has nothing to report from, or reporting from
      its runs/ would replace results with fewer.
  """
  if os.path.isdir(layout.runs_dir(output_dir)):
    text = aggregate.dlib_results_text(output_dir)
    frame = aggregate.tidy_results(study, output_dir,
                                   aggregate.dlib_frame(text))
    aggregate.check_nothing_lost(frame, output_dir)
    aggregate.write_results(frame, output_dir, text)
    return frame, True, aggregate.dlib_frame(text)
  frame = aggregate.read_results(output_dir)
  if frame is None or not len(frame):
    raise study_lib.StudyError(
        "%s has no %s and %s: nothing to report. Run the study into this "
        "folder first." % (output_dir, layout.runs_dir(output_dir),
                           "no " + layout.results_csv(output_dir)
                           if frame is None else
                           "%s has no rows" % layout.results_csv(output_dir)))
  kept = layout.dlib_results_json(output_dir)
  text = open(kept).read() if os.path.exists(kept) else None
  return frame, False, aggregate.dlib_frame(text)


def _run_tag(run):
  return "seed %d, %s" % (run.seed, tables.format_strength(run.model, run.beta,
                                                          "unknown"))


def _selection_text(shown):
  """Which run a model figure shows and why (a figure_runs.ShownRun)."""
  run = shown.run
  text = "run `%s` (%s)" % (run.run_id, _run_tag(run))
  if shown.fallback:
    return text + (", the decoder's lowest seed at this strength: %s, so "
                   "the median-MIG seed cannot be chosen" % shown.fallback)
  text += (", MIG %.4f: rank %d of the decoder's %d runs at this strength, "
           "counted from the lowest MIG" % (shown.mig, shown.rank,
                                             shown.count))
  if shown.count % 2 == 0:
    return text + (", the lower of the two middle ones (an even number of "
                   "seeds has no single median)")
  return text + ", the median"


def _dropped_text(t):
  """What the non-coding rule dropped from traversals `t`."""
  text = ("non-coding latents (mean posterior variance σ² > %.2g) dropped: "
          % t.max_variance)
  if not len(t.dropped):
    return text + "none, every latent has σ² ≤ %.2g" % t.max_variance
  text += ", ".join("z%d" % k for k in t.dropped)
  if t.mean_variances[t.latents[0]] > t.max_variance:
    text += ("; all are above it, so z%d, the lowest, is shown anyway" %
             t.latents[0])
  return text


_SELECTION_RULE = (
    "As in the paper, each decoder's figures show its seed of median MIG at "
    "its model's regularisation strength (β, or FactorVAE's γ): runs ordered by MIG (equal MIG by seed), the middle one, or "
    "with an even number of seeds the lower of the two middle ones.")


def _geometry_caption(geometry, factors, region_name):
  """What the latent-geometry figure shows, with the latents it picked."""
  g = geometry
  names = ["`%s`" % f for f in factors]
  picked = ", ".join(
      "%s axis z%d (R² = %.2f with %s)" % (axis, latent, score, name)
      for axis, latent, score, name in zip(("x", "y"), g.latents, g.scores,
                                           names))
  text = ("A grid of lines in (%s, %s) with the other factors fixed (%s), "
          "so the images differ only in these two factors, and "
          "its image in the two latents that track these factors best: %s. "
          "R² is the fraction of a latent's variance over the grid's points "
          "(the spread of its posterior means plus its average posterior "
          "variance) that a line in the factor index explains; near 0, no "
          "latent tracks the factor. A disentangled model keeps the grid up "
          "to an affine map." % (names[0], names[1], g.rendering, picked))
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
    runs: The shown run per decoder (figure_runs.ShownRun, see
      `figure_runs.shown_runs`).
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
    models = {s.run.decoder: stack.enter_context(  # Loaded once per model.
        analysis.load_model(s.run.model_dir)) for s in runs}
    traversals = (latent_traversals.traversal_comparison(models, data)
                  if options.get("traversals", True) else {})
    for shown in runs:
      run = shown.run
      tag = "%s-%s-%s" % (dataset, model, run.decoder)
      if run.decoder in traversals:
        t = traversals[run.decoder]
        path = latent_figures.plot_traversals(
            t, os.path.join(fig_dir, "traversals-%s.png" % tag))
        lines += _figure_section(
            "Traversals: %s, %s, %s decoder" % (dataset, model, run.decoder),
            path, output_dir, "Model of %s. Each row sweeps one latent from "
            "-2 to +2 around a seed image; latents ordered by average "
            "posterior variance σ² (most informative first); %s. %s" % (
                _selection_text(shown), _dropped_text(t), _SELECTION_RULE))
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
            " Model of %s." % _selection_text(shown))
  if len(traversals) >= 2:
    path = latent_figures.plot_traversal_comparison(
        traversals, os.path.join(fig_dir, "traversals_compared-%s-%s.png" %
                                 (dataset, model)))
    lines += _figure_section(
        "Traversals side by side: %s, %s" % (dataset, model), path,
        output_dir, "The same input image (the first image the traversals "
        "above sample) through each decoder's model: %s. Each model's "
        "latents are ordered by its own average posterior variance, so rows "
        "at the same height need not code the same factor. %s" % (
            "; ".join("%s: %s; %s" % (
                s.run.decoder, _selection_text(s),
                _dropped_text(traversals[s.run.decoder])) for s in runs),
            _SELECTION_RULE))
  return lines


def _write_csv(table, path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_text(path, table.to_csv(index=False))
  return path


def _link(path, output_dir):
  return "[%s](%s)" % (os.path.basename(path),
                       os.path.relpath(path, output_dir))


def _heldout_gap_lines(errors, baseline, output_dir):
  """Claim (d)'s primary endpoint: the held-out gap per seed, vs baseline."""
  table = endpoints.heldout_gap_table(endpoints.heldout_gaps(errors),
                                      baseline)
  path = _write_csv(table, layout.heldout_gaps_csv(output_dir))
  tests = endpoints.heldout_tests(table)
  # Several models, betas or decoders: several tests of one endpoint.
  holm = ("; and %s, the p corrected with Holm's method over the table's "
          "%d tests (every model, β and decoder against `%s`: a family of "
          "its own, apart from the comparison tables' families)" % (
              endpoints.HELDOUT_HOLM_COLUMN, tests, baseline)
          if tests > 1 else "")
  lines = ["### Held-out gap per seed", "",
           "Primary endpoint of the held-out claim: per seed, the mean "
           "reconstruction error on the held-out region minus that on seen "
           "data (nats per image; smaller is better, less is lost on factor "
           "combinations training never saw). Per decoder: each seed's gap "
           "and their median; against `%s`, the difference of medians with "
           "its bootstrap percentile %d%% CI (%d resamples, seed %d), P(sup) "
           "(the probability that a seed of the decoder has the larger gap) "
           "and the exact two-sided Mann-Whitney p, one test per model, β "
           "and decoder%s. A negative difference and P(sup) < 0.5 favour "
           "the decoder (numbers: %s)." % (
               baseline, round(100 * tables.CONFIDENCE_LEVEL),
               tables.N_RESAMPLES, tables.BOOTSTRAP_SEED, holm,
               _link(path, output_dir)), ""]
  if not len(table):
    return lines + ["No run has both splits.", ""]
  lines += [markdown.frame_to_markdown(
      endpoints.format_heldout_gaps(table)).strip(), ""]
  tested = table[table["p_value"].notna()]
  if len(tested):
    base = table[table["decoder"] == baseline]["n"]
    n, n_base = int(tested["n"].min()), int(base.min()) if len(base) else 0
    text = "With %d against %d seeds the smallest possible p is %.2g" % (
        n, n_base, tables.min_exact_p(n, max(n_base, 1)))
    if tests > 1:
      text += "; Holm multiplies the smallest of the %d p-values by %d" % (
          tests, tests)
    lines += [text + ".", ""]
  return lines


def _heldout_section(study, frame, output_dir):
  """The held-out generalisation figure, what the metrics there mean, and
  the held-out gap per seed."""
  seen, unseen = study.figures["heldout"]
  # External models have no trained model folder to reconstruct with.
  trained = frame[~frame["decoder"].isin(study.external_names)]
  errors = analysis.heldout_errors(trained, seen, unseen,
                                   _bindings_for(study, seen))
  atomic.write_text(layout.heldout_errors_csv(output_dir),
                    errors.to_csv(index=False))
  title = "Generalisation to the held-out region"
  if not len(errors):
    return ["### %s" % title, "", "No finished runs on `%s`." % seen, ""]
  path = figures.plot_heldout_generalisation(
      errors, os.path.join(layout.figures_dir(output_dir),
                           "heldout_generalisation.png"), study.baseline)
  fixing = [m for m in study.metrics
            if metrics_lib.METRICS[m].fixes_a_factor]
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
  return _figure_section(title, path, output_dir, caption) + (
      _heldout_gap_lines(errors, study.baseline, output_dir))


def _lower_is_better_note(labels):
  """Says which of the study's metric rows (`labels`) are better when lower."""
  return ("Higher is better for every metric except %s: these unsupervised "
          "scores measure statistical dependence between the latents, so "
          "lower means more independent latents (there a negative "
          "difference and P(sup) < 0.5 favour the decoder)." %
          ", ".join("`%s`" % label for label in labels))


# The plugin's datasets whose colour is continuous and scored by bin: the
# `ColoredSprites` classes of `sbd_plugin.datasets.registry`, named here so
# that a report imports neither dlib nor TensorFlow (test_datasets_sprites
# checks that the two agree).
BINNED_COLOUR_DATASETS = ("colored_sprites", "small_colored_sprites",
                          "colored_sprites_holdout_train",
                          "colored_sprites_holdout_test")


def _colour_factors_note(datasets):
  """How the metrics' colour factors relate to the paper's, if it applies."""
  binned = [d for d in datasets if d in BINNED_COLOUR_DATASETS]
  if not binned:
    return []
  names = ["`%s`" % d for d in binned]
  if len(names) > 1:
    names = [", ".join(names[:-1]), names[-1]]
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
          "bins." % " and ".join(names), ""]


@dataclasses.dataclass(frozen=True)
class _Report:
  """What every section of a report reads."""
  study: study_lib.Study
  output_dir: str
  frame: pd.DataFrame  # The tidy results (aggregate.tidy_results).
  from_runs: bool  # False: a folder without runs/, from its results.csv.
  csv_path: str
  versions_path: str
  outcomes: list  # runner.Outcome of the last execution, if any.
  # dlib's aggregated table (train_config.* and more); empty if unknown.
  wide: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)

  @property
  def lower_is_better(self):
    """The study's metric rows that are better when lower, in table order."""
    return [label for label in metrics_lib.labels(self.study.metrics)
            if metrics_lib.lower_is_better(label)]


def _title(r):
  lines = ["# Study `%s`" % r.study.name, ""]
  if r.study.description:
    lines += [r.study.description.strip(), ""]
  return lines


def _runs(r):
  """Runs finished, where they came from, the findings and the failed runs."""
  study, output_dir = r.study, r.output_dir
  finished = r.frame["run_id"].nunique() if len(r.frame) else 0
  reported = set(r.frame["run_id"])
  failed = [run for run in study.runs if (
      not study_lib.is_finished(output_dir, run) if r.from_runs else
      run.run_id not in reported)]
  csv_name = os.path.relpath(r.csv_path, output_dir)
  lines = ["%d of %d runs finished. Results table (one row per run and "
           "metric): [%s](%s). Library versions of every run: [%s](%s)." % (
               finished, len(study.runs), os.path.basename(r.csv_path),
               csv_name, os.path.basename(r.versions_path),
               os.path.relpath(r.versions_path, output_dir)), ""]
  if not r.from_runs:
    lines += ["This folder has no `runs/` (the trained models are not kept "
              "here): this report is rebuilt from %s, which it does not "
              "change; the tables, statistics and the figures drawn from "
              "that table are recomputed, the figures drawn from the trained "
              "models are kept as they were drawn when the models were "
              "here." % csv_name, ""]
  lines += ["Stack: " + _versions_line(r.versions_path) + ".", ""]
  lines += provenance_report.provenance_lines(r.versions_path,
                                             sorted(reported))
  lines += _colour_factors_note(dict.fromkeys(run.dataset
                                              for run in study.runs))
  lines += _findings_lines(output_dir)
  if failed and not r.from_runs:
    lines += ["Runs of the study not in %s:" % csv_name, ""]
    lines += ["- `%s`" % run.run_id for run in failed] + [""]
  elif failed:
    error_log = os.path.relpath(layout.error_path(
        layout.run_dir(output_dir, "<id>")), output_dir)
    lines += ["Unfinished or failed runs (see `%s`):" % error_log, ""]
    errors = {o.run_id: o.error for o in r.outcomes}
    lines += ["- `%s` %s" % (run.run_id, errors.get(run.run_id, ""))
              for run in failed] + [""]
  return lines


def _no_results(unused_r):
  return ["No finished runs yet."]


def _comparison(r):
  """The comparison tables, how to read them, and the seeds they need."""
  study, output_dir = r.study, r.output_dir
  # Datasets in the study's order, as in the other sections.
  table = tables.comparison_table(r.frame, study.baseline,
                                  study.primary_metrics,
                                  dataset_order=_dataset_order(r))
  paths = tables.write_tables(table, layout.comparison_prefix(output_dir))
  # Holm's secondary family: the rows the table has; a metric without any
  # value (e.g. a downstream size the study does not compute) has none.
  shown = set(table["metric"])
  secondary = [m for m in metrics_lib.labels(study.metrics)
               if m not in study.primary_metrics and m in shown]
  empty = [m for m in metrics_lib.labels(study.metrics) if m not in shown]
  lines = ["## Spatial Broadcast vs baseline", "",
           "Per dataset, model, beta (the model's regularisation strength: "
           "FactorVAE's γ, DIP-VAE's λ_od, annealed VAE's C_max, else β) and "
           "metric: median [interquartile range] "
           "over seeds per decoder (n = seeds); the difference of medians "
           "against the baseline with its bootstrap percentile %d%% CI "
           "(%d resamples, seed %d); P(sup) = U / (n1 n2), the probability "
           "that a seed of the decoder scores higher than one of the baseline "
           "(ties count half; 0.5 = no effect); p, the per-cell two-sided "
           "Mann-Whitney U p-value, exact also when seeds tie (the share of "
           "all C(n1 + n2, n1) splits of the pooled seeds whose U is at "
           "least as extreme, twice the smaller tail); and p Holm, "
           "corrected with Holm's method over all cells "
           "of the primary metrics (%s) and separately over those of the "
           "secondary ones (%s). Cells without a test (baseline rows, fewer "
           "than 2 seeds, no baseline values) are not counted; cells whose "
           "seeds all tie count with p = 1. Of these numbers only the "
           "confidence interval is approximate: it depends on the resampling "
           "and, with few seeds, the percentile interval tends to be too "
           "narrow; medians, P(sup), p and p Holm are exact." % (
               round(100 * tables.CONFIDENCE_LEVEL), tables.N_RESAMPLES,
               tables.BOOTSTRAP_SEED, ", ".join(study.primary_metrics) or
               "none", ", ".join(secondary) or "none")]
  if empty:
    lines[-1] += (" No run has a value of %s, so %s not in the table." % (
        ", ".join(empty), "it is" if len(empty) == 1 else "they are"))
  lines[-1] += _cells_without_values(r.frame, empty, _dataset_order(r))
  lines[-1] += _few_seeds_interval_note(table)
  if r.lower_is_better:
    lines[-1] += " " + _lower_is_better_note(r.lower_is_better)
  lines += [""]
  with open([p for p in paths if p.endswith(".md")][0]) as f:
    lines += [f.read().strip(), ""]
  lines += _seeds_needed_lines(table)
  lines += ["Also as " + ", ".join("[%s](%s)" % (
      os.path.splitext(p)[1][1:].upper(), os.path.relpath(p, output_dir))
                                   for p in paths) + ".", ""]
  return lines


def _cells_without_values(frame, empty, dataset_order=None):
  """Decoders missing from a row of the table: every seed's value is NaN.

  `empty`: metrics without any value, said already; `dataset_order`: the
  table's order of the datasets.
  """
  keys = tables.GROUP_COLUMNS + ["decoder"]
  has_value = frame.groupby(keys, dropna=False, sort=True)["value"].apply(
      lambda values: values.notna().any())
  missing = [key for key, ok in has_value.items()
             if not ok and key[keys.index("metric")] not in empty]
  if not missing:
    return ""
  rank = tables.dataset_rank(dataset_order)
  missing.sort(key=lambda key: rank(key[0]))  # stable: as the table
  return (" These cells have runs but no value (the metric failed or was not "
          "computed for every seed), so the table has no row for them: %s." %
          "; ".join("%s, %s, %s, %s: %s" % (
              dataset, model, tables.format_strength(model, beta), metric,
              decoder) for dataset, model, beta, metric, decoder in missing))


def _with_baseline_n(table):
  """The comparison table with `n_baseline`, its row's baseline seeds."""
  keys = tables.GROUP_COLUMNS
  base = table[table["decoder"] == table["baseline"]][keys + ["n"]]
  return table.merge(base.rename(columns={"n": "n_baseline"}), on=keys,
                     how="left")


def _fewest_compared_seeds(rows):
  """The fewest seeds on either side of the comparisons in `rows` (decoder
  rows of `_with_baseline_n`'s table), or None without rows."""
  if not len(rows):
    return None
  return int(rows[["n", "n_baseline"]].min().min())


def _few_seeds_interval_note(table):
  """A warning when an interval comes from 3 or fewer seeds per group."""
  rows = _with_baseline_n(table)
  fewest = _fewest_compared_seeds(rows[rows["ci_low"].notna()])
  if fewest is None or fewest > 3:
    return ""
  return (" Here some cells compare as few as %d seeds on a side: a "
          "bootstrap of so few values can take only a handful of medians, so "
          "the interval is not a usable confidence interval (it excludes 0 "
          "often when there is no difference); read p, which is exact." %
          fewest)


def _no_primary_test_line(primary):
  """Why no primary cell has a test: too few seeds, or no baseline values."""
  notes = set(primary.loc[primary["decoder"] != primary["baseline"], "note"])
  reasons = []
  if tables.NOTE_NO_BASELINE in notes:
    reasons.append("no values of `%s` to compare with" %
                   primary["baseline"].iloc[0])
  if tables.NOTE_SMALL_N in notes:
    reasons.append("fewer than 2 seeds on a side")
  return ["No primary cell has a test: %s." % (
      " or ".join(reasons) or "nothing to compare"), ""]


def _seeds_needed_lines(table):
  """How small p can be with the seeds the primary cells have, and whether
  Holm can get below alpha: counted in the table (failed runs and external
  models' own seeds change them), not in the study's plan."""
  primary = _with_baseline_n(table[table["family"] == tables.PRIMARY])
  compared = primary[primary["decoder"] != primary["baseline"]]
  if not len(compared):
    return []
  tested = compared[compared["p_value"].notna()]
  if not len(tested):
    return _no_primary_test_line(primary)
  # Holm's m: the tests the table has (`tables.holm` counts only those).
  m = len(tested)
  pairs = sorted({(int(n), int(b)) for n, b in
                  zip(tested["n"], tested["n_baseline"])})
  floors = [tables.min_exact_p(n, b) for n, b in pairs]
  best, worst = min(floors), max(floors)
  if len(pairs) == 1:
    n, b = pairs[0]
    seeds = ("%d seeds per decoder" % n if n == b else
             "%d against %d seeds" % (n, b))
    floor = ("the smallest possible two-sided exact Mann-Whitney p-value is "
             "2 / C(%d, %d) = %.2g" % (n + b, n, best))
  else:
    seeds = "%d to %d seeds on a side of a primary cell" % (
        min(min(p) for p in pairs), max(max(p) for p in pairs))
    floor = ("the smallest possible two-sided exact Mann-Whitney p-value of a "
             "cell is %.2g to %.2g" % (best, worst))
  if m * best >= tables.ALPHA:
    reach = "no p Holm can be below %g" % tables.ALPHA
  elif m * worst >= tables.ALPHA:
    reach = ("p Holm < %g is within reach only in the cells with the most "
             "seeds" % tables.ALPHA)
  else:
    reach = "p Holm < %g is within reach in every cell" % tables.ALPHA
  text = ("With %s %s (all seeds of one decoder above all of the other's); "
          "Holm multiplies the smallest of the table's %d primary test%s by "
          "%d, so %s. With equal groups, %d test%s need%s at least %d seeds "
          "per decoder." % (
              seeds, floor, m, "" if m == 1 else "s", m, reach, m,
              "" if m == 1 else "s", "s" if m == 1 else "",
              tables.seeds_needed(m)))
  pending = int((compared["note"] == tables.NOTE_SMALL_N).sum())
  if pending:
    text += (" %d more primary cell%s %s fewer than 2 seeds on a side: no "
             "test yet, not counted." % (
                 pending, "" if pending == 1 else "s",
                 "has" if pending == 1 else "have"))
  return [text, ""]


def _result_figures(r):
  """The figures of the results table: metric distributions, rate-distortion.

  In a folder without runs/, also the kept figures of the trained models.
  """
  study, output_dir = r.study, r.output_dir
  fig_dir = layout.figures_dir(output_dir)
  lines = ["## Figures", ""]
  redrawn = []
  path = figures.plot_metric_distributions(
      r.frame, os.path.join(fig_dir, "metric_distributions.png"),
      study.baseline, metrics_lib.labels(study.metrics), _dataset_order(r))
  lines += _figure_section(
      "Metric distributions", path, output_dir,
      "Each point is one seed; the bar marks the median." +
      (" " + _lower_is_better_note(r.lower_is_better)
       if r.lower_is_better else ""))
  redrawn.append(path)
  # External models have no training losses here: not on these axes.
  path = figures.plot_rate_distortion(
      r.frame[~r.frame["decoder"].isin(study.external_names)],
      os.path.join(fig_dir, "rate_distortion.png"), study.baseline,
      _dataset_order(r))
  lines += _figure_section(
      "Rate-distortion", path, output_dir,
      "Reconstruction loss (NLL, nats per image) against KL (rate) and "
      "against MIG: per decoder the mean over seeds at each β with error "
      "bars of ±1 sample sd in both axes, joined in order of β and "
      "labelled with it; faint points are single runs.")
  redrawn.append(path)
  if not r.from_runs:
    kept = _kept_figure_sections(output_dir, redrawn)
    source = os.path.relpath(r.csv_path, output_dir)
    # Only a folder that keeps figures of its models has "others" to name.
    lines[2:2] = [("The first two figures are redrawn from %s; the others "
                   "were drawn from the trained models, which this folder "
                   "does not have, and are kept as they were, with their "
                   "captions." % source) if kept else
                  "The figures are redrawn from %s." % source, ""]
    lines += kept
  return lines


def _rate_distortion_floor(table):
  """What the seed counts allow of the per-beta tests in `table`."""
  tested = table[table["p_value"].notna()]
  if not len(tested):
    return []
  floor = float(tested["min_p"].min())
  # Holm runs per dataset, model and decoder, over the betas it was tested at.
  families = tested.groupby(["dataset", "model", "decoder"])["min_p"]
  betas = families.size()
  best_holm = float((betas * families.min()).min())
  seeds = sorted(set(table.loc[table["n"] > 0, "n"]))
  text = ("Seeds per decoder and β: %s. The smallest possible exact "
          "two-sided p at one β is %.2g (every seed of one decoder on one "
          "side of every seed of the other)" % (
              ", ".join(str(n) for n in seeds), floor))
  if floor >= tables.ALPHA:
    text += (", so no β can be significant on its own, however large the "
             "difference: the per-β rows describe; a claim across the %d β "
             "needs a test that pools them (MIG: the next table)" %
             int(betas.max()))
  elif best_holm >= tables.ALPHA:
    count = ("%d" % betas.max() if betas.min() == betas.max() else
             "%d-%d" % (betas.min(), betas.max()))
    text += (", but Holm over each decoder's %s β multiplies its smallest p "
             "by their number, so no p Holm can be below %g" % (
                 count, tables.ALPHA))
  return [text + ".", ""]


def _rate_distortion_by_beta(r):
  """Claim (c): per beta, each decoder's NLL, KL and MIG, and the NLL test.

  Only for the datasets and models whose trained runs have more than one
  beta; none, no section.
  """
  trained = r.frame[~r.frame["decoder"].isin(r.study.external_names)]
  # Only the datasets and models with a sweep have a curve.
  betas = trained.groupby(["dataset", "model"])["beta"].transform("nunique")
  swept = trained[betas >= 2]
  if not len(swept):
    return []
  table = endpoints.rate_distortion_table(swept, r.study.baseline)
  path = _write_csv(table, layout.rate_distortion_csv(r.output_dir))
  lines = ["## Rate-distortion across β", "",
           "The numbers of the rate-distortion figure (below): per "
           "dataset, model, β (the model's regularisation strength, as in "
           "the comparison table: FactorVAE's γ, DIP-VAE's λ_od, annealed "
           "VAE's C_max, else β) and decoder, the mean ± sample sd over "
           "seeds of the reconstruction NLL (dlib's `reconstruction_loss` of "
           "the training results, nats per image), the KL (`kl_loss`, the "
           "rate) and MIG; the decoder's mean NLL minus `%s`'s at the same "
           "β; the exact "
           "two-sided Mann-Whitney p of the NLL at that β and p Holm over "
           "the β of each decoder (numbers: %s). Lower NLL at a given KL is "
           "the better rate-distortion trade-off." % (
               r.study.baseline, _link(path, r.output_dir)), ""]
  lines += [markdown.frame_to_markdown(
      endpoints.format_rate_distortion(table)).strip(), ""]
  return (lines + _rate_distortion_floor(table) +
          _rate_distortion_across_beta(r, swept))


def _rate_distortion_across_beta(r, swept):
  """MIG against the baseline across every β at once (stratified by β)."""
  table = endpoints.pooled_beta_table(swept, r.study.baseline)
  path = _write_csv(table, layout.rate_distortion_pooled_csv(r.output_dir))
  return ["### MIG across β", "",
          "Each decoder's MIG against `%s`'s over the whole sweep, comparing "
          "runs only at the same β: the Mann-Whitney U summed over the β "
          "both decoders have (P(above) = U / its maximum: above 0.5, the "
          "decoder's MIG ranks higher), its exact two-sided p over every "
          "relabelling of the runs within each β (opposite effects at "
          "different β cancel), and p Holm over this table's %d test%s, a "
          "family of its own (numbers: %s). The NLL is not pooled: at the "
          "same β the decoders may use different rates (KL)." % (
              r.study.baseline, int(table["p_value"].notna().sum()),
              "" if int(table["p_value"].notna().sum()) == 1 else "s",
              _link(path, r.output_dir)), "",
          markdown.frame_to_markdown(
              endpoints.format_pooled_beta(table)).strip(), ""]


def _dataset_order(r):
  """The frame's datasets in the study's order (others after, by name): the
  order of the comparison table, the figures and the gaps between datasets."""
  present = set(r.frame["dataset"])
  order = [d for d in dict.fromkeys(run.dataset for run in r.study.runs)
           if d in present]
  return order + sorted(present - set(order))


def _dataset_gaps(r):
  """Claim (e): the gap over the baseline on the first dataset minus others.

  Only for a study with more than one dataset and runs of the baseline.
  """
  datasets = _dataset_order(r)
  baseline = r.study.baseline
  if len(datasets) < 2 or baseline not in set(r.frame["decoder"]):
    return []
  first = datasets[0]
  metrics = [m for m in r.study.primary_metrics
             if m in set(r.frame["metric"])]
  if not metrics:
    return []  # No primary metric: nothing the gap is defined on.
  table = pd.concat([endpoints.gap_difference_table(
      r.frame[r.frame["dataset"] == first],
      r.frame[r.frame["dataset"] == other], baseline, metrics,
      labels=(first, other)) for other in datasets[1:]], ignore_index=True)
  path = _write_csv(table, layout.dataset_gaps_csv(r.output_dir))
  lines = ["## Gap between datasets", "",
           "Per primary metric (%s): on each dataset the decoder's median "
           "minus `%s`'s (the gap, as in the comparison table), and the gap "
           "on `%s` minus the gap on %s, with its bootstrap "
           "percentile %d%% CI (the seeds of the four decoder × dataset "
           "cells resampled independently; %d resamples, seed %d; "
           "approximate and, with few seeds, too narrow). A positive "
           "difference of a higher-is-better metric is a larger gain on "
           "`%s` (numbers: %s). The same table against another "
           "study's results.csv: `python -m evaluation.gaps_cli`." % (
               ", ".join(metrics) or "none", baseline, first,
               "the other dataset" if len(datasets) == 2 else
               "each other dataset", round(100 * tables.CONFIDENCE_LEVEL),
               tables.N_RESAMPLES, tables.BOOTSTRAP_SEED, first,
               _link(path, r.output_dir)), ""]
  if not len(table):
    return lines + ["No decoder besides `%s` has values of %s on both "
                    "datasets." % (baseline, ", ".join(metrics)), ""]
  for (one, other), part in table.groupby(["first", "second"], sort=False):
    lines += ["`%s` minus `%s`:" % (one, other), "",
              markdown.frame_to_markdown(
                  endpoints.format_gap_difference(part)).strip(), ""]
  return lines


def _models(r):
  """Each dataset and model's traversals and latent geometry, if asked."""
  study = r.study
  if not r.from_runs or not (study.figures.get("traversals", True) or
                             study.figures.get("latent_geometry")):
    return []
  lines = []
  # External models have no trained dlib model to draw from.
  trained = r.frame[~r.frame["decoder"].isin(study.external_names)]
  if not len(trained):
    return []
  for (dataset, model), runs in figure_runs.shown_runs(
      trained, study.baseline, _dataset_order(r)):
    data = analysis.load_dataset(dataset, _bindings_for(study, dataset))
    lines += _model_figures(data, dataset, model, runs, study, r.output_dir)
  return lines


def _heldout(r):
  """The held-out section; without runs/, the gap from heldout_errors.csv."""
  if not r.study.figures.get("heldout"):
    return []
  if r.from_runs:
    return _heldout_section(r.study, r.frame, r.output_dir)
  path = layout.heldout_errors_csv(r.output_dir)
  if not os.path.exists(path):
    return []
  # The errors were computed when the models were here; the figure is kept.
  lines = ["## Held-out region", ""]
  try:
    # round_trip, as for results.csv: the default parser can be a bit off,
    # and the gaps rebuilt here must equal those computed from the models.
    errors = pd.read_csv(path, dtype={"run_id": str},
                         float_precision="round_trip")
    return lines + _heldout_gap_lines(errors, r.study.baseline, r.output_dir)
  except (ValueError, pd.errors.ParserError) as e:
    # A damaged file costs this section, not the report.
    return lines + ["No held-out gap: %s does not read as held-out errors "
                    "(%s)." % (os.path.relpath(path, r.output_dir), e), ""]


# The report, section by section; without finished runs, only the first ones.
# Tables first, then figures: the model figures' "###" sections belong to
# the "## Figures" chapter (and a folder without runs/ keeps them by it).
def _different_settings(r):
  """A warning if runs one row compares were trained with other settings."""
  # What the study sets per decoder may differ between decoders by design.
  found = aggregate.settings_differences(
      r.frame, r.wide, aggregate.planned_per_decoder(r.study.runs))
  if not found:
    return []
  lines = ["## Warning: runs compared here were trained with different "
           "settings", "",
           "dlib's record of each training (`train_config.*` in its train "
           "results) shows runs of one dataset, model and strength trained "
           "with different values of these gin bindings (between decoders, "
           "only the decoders' own bindings and what the study plans per "
           "decoder in `[decoder_bindings]` may differ), so the tables below "
           "compare different settings. Typical causes: gin files edited "
           "between sessions of a resumed study, or runs trained by another "
           "plugin version. Train the differing runs again with one setting "
           "(into a new --output folder), or report them as separate "
           "studies.", ""]
  for group, binding, values in found:
    lines.append("- %s, `%s`: %s" % (group, binding, "; ".join(
        "%s in %s" % (value, ", ".join("`%s`" % run for run in runs))
        for value, runs in values.items())))
  return lines + [""]


_SECTIONS = (_title, _runs, _different_settings, _comparison, _dataset_gaps,
             _rate_distortion_by_beta, _result_figures, _models, _heldout)
_SECTIONS_WITHOUT_RESULTS = (_title, _runs, _no_results)


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

  Raises:
    StudyError: before writing anything, if the folder has nothing to report
      or its runs/ would give fewer results than it already has.
  """
  frame, from_runs, wide = _report_source(study, output_dir)
  os.makedirs(layout.figures_dir(output_dir), exist_ok=True)
  report = _Report(study, output_dir, frame, from_runs,
                   layout.results_csv(output_dir),
                   layout.versions_json(output_dir), list(outcomes or []),
                   wide)
  lines = []
  for section in _SECTIONS if len(frame) else _SECTIONS_WITHOUT_RESULTS:
    lines += section(report)
  return _write(output_dir, lines)


def _write(output_dir, lines):
  path = layout.report_path(output_dir)
  # Whole or not at all: the next report of a folder without runs/ reads
  # the kept figures' captions from this one.
  atomic.write_text(path, "\n".join(lines).rstrip() + "\n")
  return path
