"""Figures of a study's results table, and what every figure shares.

Drawing only, from the study runner's tidy results DataFrame (one row per run
and metric, see evaluation/tables.py): per-seed metric distributions, the
rate-distortion / reconstruction-vs-MIG plots across a beta sweep (mean
and sd per beta from evaluation/endpoints.py), and the
seen vs held-out reconstruction errors per model and beta (the DataFrame of
`analysis.heldout_errors`). Also what the report's figures share: decoder
colours, DPI and `save_png` (a metric row's display name is in its record,
evaluation/metrics.py). The figures of a model's latents (traversals, latent
geometry) are in evaluation/latent_figures.py.

Each `*_figure` function returns the matplotlib Figure, so that figures can be
checked without reading pixels, and the matching `plot_*` function writes it
as one PNG and returns its path. Figures are drawn on
`matplotlib.figure.Figure` objects directly (Agg canvas, no pyplot state); the
tidy-data panels with seaborn on those axes.
"""
import os
import textwrap

from matplotlib import figure as mpl_figure
from matplotlib import lines as mpl_lines
from matplotlib import patches as mpl_patches
import numpy as np
import pandas as pd
import seaborn as sns

from evaluation import analysis
from evaluation import endpoints
from evaluation import layout
from evaluation import metrics as metrics_lib
from evaluation import study as study_lib
from evaluation import tables
from evaluation.tables import decoder_order
from sbd_plugin import atomic

DPI = 110
# Fixed colours for the two decoders of the study, so that every figure of a
# report uses the same ones; other labels take the remaining tab10 colours.
# The paper's pair takes the colours of dlib's pair (a study rarely has both).
_FIXED_COLOURS = {"broadcast": "tab:blue", "deconv": "tab:orange",
                  "paper_broadcast": "tab:blue", "paper_deconv": "tab:orange"}
_UNKNOWN_BETA = "unknown"  # Shown for runs whose beta is not known (NaN).


# --- Shared helpers ---------------------------------------------------------


def decoder_colours(decoders):
  """Returns a dict decoder label -> matplotlib colour (stable per label)."""
  spare = [c for c in ("tab:green", "tab:red", "tab:purple", "tab:brown",
                       "tab:pink", "tab:gray", "tab:olive", "tab:cyan")]
  colours = {}
  for decoder in sorted(set(decoders)):
    fixed = _FIXED_COLOURS.get(decoder)
    if fixed in colours.values():  # Both pairs in one study.
      fixed = None
    colours[decoder] = fixed or spare[
        sum(c in spare for c in colours.values()) % len(spare)]
  return colours


def _metric_order(metrics, order):
  """`metrics` in the study's `order`, then any others alphabetically."""
  metrics = set(metrics)
  return ([m for m in order if m in metrics] +
          sorted(metrics - set(order)))


def save_png(fig, path):
  """Writes `fig` as a PNG at DPI, creating its folder; returns `path`."""
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  # Whole or not at all: a report without runs/ keeps the model figures.
  with atomic.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=DPI, format="png")
  return path


def _note(ax, text):
  """Writes `text` in grey in the middle of an empty panel."""
  ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
          color="gray")


def _jitter(n, seed=0, width=0.12):
  # Deterministic, so that re-rendering a report gives identical PNGs.
  return np.random.RandomState(seed).uniform(-width, width, size=n)


def _seed_points(ax, frame, y, groups, width, **style):
  """Scatters one point per row of `frame`, jittered around its group's x.

  seaborn's stripplot jitters with numpy's global random state; the jitter
  here is seeded per group instead, so re-rendered figures are identical.

  Args:
    ax: matplotlib Axes.
    frame: Tidy DataFrame with the column `y`.
    y: Column plotted vertically.
    groups: Iterable of (x centre, jitter seed, boolean row mask [N]).
    width: Half-width of the jitter.
    **style: seaborn.scatterplot keywords.
  """
  x = np.zeros(len(frame))
  for centre, seed, mask in groups:
    x[mask] = centre + _jitter(int(mask.sum()), seed=seed, width=width)
  sns.scatterplot(data=frame.assign(x=x), x="x", y=y, legend=False, ax=ax,
                  **style)


# --- Metric distributions ---------------------------------------------------


def _decoder_axis(ax, decoders, counts, fontsize):
  """One x tick per decoder, labelled with its number of seeds."""
  ax.set_xticks(range(len(decoders)))
  ax.set_xticklabels(["%s\n(n=%d)" % (d, counts.get(d, 0))
                      for d in decoders], fontsize=fontsize)
  ax.set_xlim(-0.6, len(decoders) - 0.4)
  ax.set_xlabel("")
  ax.grid(axis="y", alpha=0.3)


def _strip_with_medians(ax, values, decoders, colours):
  """One panel: per-seed values per decoder and their medians (seaborn)."""
  if values.empty:
    return
  # A box plot reduced to its median line. Drawn first: seaborn's box plot
  # recomputes the data limits from lines only, which would drop the points.
  sns.boxplot(data=values, x="decoder", y="value", order=decoders, width=0.56,
              showbox=False, showcaps=False, showfliers=False, whis=0,
              whiskerprops={"visible": False},
              medianprops={"color": "black", "linewidth": 2, "zorder": 3},
              ax=ax)
  groups = [(i, i, (values["decoder"] == d).to_numpy())
            for i, d in enumerate(decoders)]
  _seed_points(ax, values, "value", groups, width=0.12,
               hue="decoder", palette=colours, s=22, alpha=0.75,
               edgecolor="none", zorder=2)


def _panel_grid(num_metrics, max_columns):
  """(columns, rows per dataset x model x beta row) for `num_metrics` panels.

  Rows are filled evenly (8 metrics: 2 rows of 4, not 6 and 2).
  """
  rows = max(1, -(-num_metrics // max_columns))
  columns = max(1, -(-num_metrics // rows))
  return columns, -(-num_metrics // columns)


def metric_distributions_figure(df, baseline=study_lib.BASELINE,
                                metrics=study_lib.METRICS, max_columns=6,
                                dataset_order=None):
  """Per-seed metric values per decoder, with the medians marked.

  Args:
    df: Tidy results DataFrame (columns dataset, model, beta, decoder, seed,
      metric, value).
    baseline: Decoder shown first in every panel.
    metrics: Metric names in panel order (the study's `metrics`); metrics of
      `df` not listed follow alphabetically.
    max_columns: Panels per row; more metrics wrap onto further rows, so a
      study with every dlib metric stays readable at page width.
    dataset_order: Row order of the datasets, e.g. the study's (as the
      comparison table's); others follow by name. Default: by name.

  Returns:
    matplotlib Figure with one panel per metric for each dataset x model x
    beta combination present in `df` (one or more rows each); a metric's
    panels share their y axis.
  """
  df = df[df["value"].notna()]
  metric_columns = _metric_order(df["metric"].unique(), metrics)
  # groupby with dropna=False keeps runs whose beta is unknown (NaN).
  combos = list(df.groupby(["dataset", "model", "beta"], dropna=False))
  key = tables.dataset_rank(dataset_order)
  combos.sort(key=lambda combo: key(combo[0][0]))  # stable: model, beta kept
  several_betas = df["beta"].nunique() > 1
  decoders = decoder_order(df["decoder"].unique(), baseline)
  colours = decoder_colours(decoders)
  columns, blocks = _panel_grid(len(metric_columns), max_columns)
  # Wrapped rows hold other metrics, so every panel then needs its title.
  every_title = blocks > 1

  fig = mpl_figure.Figure(
      figsize=(1.4 + (0.9 + 0.6 * len(decoders)) * columns,
               0.6 + (2.9 if every_title else 2.6) * blocks * len(combos)),
      layout="constrained")
  grid = fig.subplots(blocks * len(combos), columns, squeeze=False)
  first_of_metric, used = {}, set()
  for r, ((dataset, model, beta), cell) in enumerate(combos):
    row_label = "%s\n%s" % (dataset, model)  # Two lines: rows are short.
    if several_betas:
      row_label += " (%s)" % tables.format_strength(model, beta,
                                                     _UNKNOWN_BETA)
    for c, metric in enumerate(metric_columns):
      ax = grid[r * blocks + c // columns, c % columns]
      used.add(ax)
      if metric in first_of_metric:
        ax.sharey(first_of_metric[metric])
      else:
        first_of_metric[metric] = ax
      values = cell[cell["metric"] == metric]
      _strip_with_medians(ax, values, decoders, colours)
      _decoder_axis(ax, decoders, values["decoder"].value_counts(), 8)
      if r == 0 or every_title:
        # Wrapped: a long name would run into the next panel's title.
        ax.set_title(textwrap.fill(metrics_lib.display_name(metric), 22),
                     fontsize=10 if every_title else None)
      ax.set_ylabel(row_label + "\nscore" if c % columns == 0 else "",
                    fontsize=9)
  for ax in grid.flat:  # The last row of a combination may be short.
    if ax not in used:
      ax.remove()
  fig.legend(handles=[mpl_lines.Line2D([], [], color="black", lw=2)],
             labels=["median over seeds"], loc="outside lower right",
             fontsize=8, frameon=False)
  return fig


def plot_metric_distributions(df, path, baseline=study_lib.BASELINE,
                              metrics=study_lib.METRICS, dataset_order=None):
  """Writes `metric_distributions_figure` to `path` (PNG); returns path."""
  return save_png(metric_distributions_figure(
      df, baseline, metrics, dataset_order=dataset_order), path)


# --- Rate-distortion --------------------------------------------------------


# One row per run (training statistics and MIG): endpoints' function, kept
# under this name for the figures' callers.
run_table = endpoints.run_table


def _mean_sd_curve(ax, runs, x, y, colour, model):
  """One decoder's mean over seeds at each beta, ±1 sd in x and y.

  Points at the means, error bars of one sample standard deviation across
  seeds in both axes (as the paper's curves), a line joining the betas in
  ascending order, and every beta labelled beside its point.
  """
  summary = endpoints.beta_summary(runs, [x, y])
  summary = summary.dropna(subset=["%s_mean" % x, "%s_mean" % y])
  if summary.empty:
    return
  means_x = summary["%s_mean" % x].to_numpy(dtype=float)
  means_y = summary["%s_mean" % y].to_numpy(dtype=float)
  ax.plot(means_x, means_y, "-", color=colour, lw=1.8, zorder=3)
  # A single seed has no sd: no bar rather than a zero-length one.
  ax.errorbar(means_x, means_y,
              xerr=summary["%s_sd" % x].fillna(0).to_numpy(dtype=float),
              yerr=summary["%s_sd" % y].fillna(0).to_numpy(dtype=float),
              fmt="o", color=colour,
              ms=7, mec="black", elinewidth=1.2, capsize=3, zorder=4)
  for beta, px, py in zip(summary.index, means_x, means_y):
    ax.annotate(tables.format_strength(model, beta, _UNKNOWN_BETA), (px, py),
                xytext=(6, 5), textcoords="offset points", fontsize=7,
                color=colour, zorder=5,
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none",
                          alpha=0.7))


def rate_distortion_figure(df, baseline=study_lib.BASELINE,
                           dataset_order=None):
  """Rate-distortion and reconstruction-vs-MIG plots across a beta sweep.

  Args:
    df: Tidy results DataFrame (one row per run and metric, with the run's
      reconstruction_loss and kl_loss repeated on each row).
    baseline: Decoder listed first in the legend.
    dataset_order: Row order of the datasets (as `metric_distributions_figure`).

  Returns:
    matplotlib Figure, one row per dataset x model, two panels per row:
    (a) reconstruction loss vs KL, (b) reconstruction loss vs MIG. Per
    decoder (one colour) the mean over seeds at each beta with ±1 sample sd
    error bars in both axes, joined in beta order and labelled with beta;
    each run as a faint point.
  """
  runs = run_table(df, "mig")
  key = tables.dataset_rank(dataset_order)
  combos = sorted(runs[["dataset", "model"]].drop_duplicates().itertuples(
      index=False), key=lambda combo: (key(combo[0]), str(combo[1])))
  decoders = decoder_order(runs["decoder"].unique(), baseline)
  colours = decoder_colours(decoders)
  fig = mpl_figure.Figure(figsize=(10, 0.7 + 3.6 * len(combos)),
                          layout="constrained")
  axes = fig.subplots(len(combos), 2, squeeze=False)
  panels = [("kl_loss", "KL (rate, nats)", "(a) rate-distortion"),
            ("mig", "MIG", "(b) reconstruction vs MIG")]
  for r, (dataset, model) in enumerate(combos):
    cell = runs[(runs["dataset"] == dataset) & (runs["model"] == model)]
    for c, (x, x_label, title) in enumerate(panels):
      ax = axes[r, c]
      for decoder in decoders:
        sub = cell[cell["decoder"] == decoder].dropna(
            subset=[x, "reconstruction_loss"])
        ax.scatter(sub[x], sub["reconstruction_loss"], s=14, alpha=0.3,
                   color=colours[decoder], edgecolor="none", zorder=2)
        _mean_sd_curve(ax, sub, x, "reconstruction_loss", colours[decoder],
                       model)
      if cell[x].isna().all():
        _note(ax, "no %s values" % x_label)
      ax.set_xlabel(x_label)
      ax.set_ylabel("reconstruction loss (nats)")
      ax.set_title("%s — %s / %s" % (title, dataset, model), fontsize=10)
      ax.grid(alpha=0.3)
  handles = [mpl_lines.Line2D([], [], color=colours[d], marker="o", ls="-",
                              markeredgecolor="black") for d in decoders]
  handles.append(mpl_lines.Line2D([], [], color="gray", marker="o", ls="",
                                  alpha=0.3, markeredgecolor="none"))
  # Named as the models name their strength: β, or γ for FactorVAE.
  strengths = "/".join(sorted({layout.REGULARISATION_SYMBOLS.get(m, "β")
                               for m in runs["model"].unique()}))
  fig.legend(handles=handles, labels=[
      "%s: mean ± 1 sd over seeds per %s" % (d, strengths)
      for d in decoders] + ["one run"],
             loc="outside lower center", ncol=len(handles), fontsize=9,
             frameon=False)
  return fig


def plot_rate_distortion(df, path, baseline=study_lib.BASELINE,
                         dataset_order=None):
  """Writes `rate_distortion_figure(df)` to `path` (PNG); returns path."""
  return save_png(rate_distortion_figure(df, baseline, dataset_order), path)


# --- Held-out generalisation ------------------------------------------------


def _heldout_panel(ax, errors, decoders, splits, split_colours):
  """One model and beta: per decoder a bar per split, points per seed."""
  if len(errors):
    width = 0.8 / len(splits)
    # seaborn dodges the splits side by side, each bar 0.9 of its slot.
    sns.barplot(data=errors, x="decoder", y="error", hue="split",
                order=decoders, hue_order=splits, estimator="median",
                errorbar=None, palette=split_colours, saturation=1,
                alpha=0.55, gap=0.1, legend=False, ax=ax)
    for bar in ax.patches:
      bar.set_edgecolor(bar.get_facecolor())  # outlined in its own colour
    # Points at the bars' centres, jittered with one seed per split.
    groups = [(i + (j - (len(splits) - 1) / 2) * width, j,
               ((errors["decoder"] == d) & (errors["split"] == s)).to_numpy())
              for j, s in enumerate(splits) for i, d in enumerate(decoders)]
    _seed_points(ax, errors, "error", groups, width=width * 0.25,
                 color="black", s=16, edgecolor="face", linewidth=1.5,
                 zorder=3)
  else:
    _note(ax, "no errors")
  counts = errors.drop_duplicates(["decoder", "seed"])["decoder"]
  _decoder_axis(ax, decoders, counts.value_counts(), 9)


def heldout_generalisation_figure(errors_df, baseline=study_lib.BASELINE,
                                  max_columns=4):
  """Seen vs held-out reconstruction error per model, beta and decoder.

  Args:
    errors_df: Tidy DataFrame with columns model, beta (NaN where unknown),
      decoder, seed, split (analysis.SPLITS) and error (the run's mean
      per-image error), as returned by `analysis.heldout_errors`.
    baseline: Decoder shown first.
    max_columns: Panels per row before the next row starts.

  Returns:
    matplotlib Figure: one panel per model and beta (titled "<model>,
    β=<beta>", sharing the y axis); in each, per decoder one bar per split
    at the median over seeds, with the per-seed errors as points; the
    legend is the figure's.
  """
  decoders = decoder_order(errors_df["decoder"].unique(), baseline)
  present = set(errors_df["split"])
  splits = [s for s in analysis.SPLITS if s in present] + sorted(
      present - set(analysis.SPLITS))
  split_colours = dict(zip(splits, ["#9ecae1", "#de2d26", "#a1d99b",
                                    "#bcbddc"]))
  # groupby with dropna=False keeps runs whose beta is unknown (NaN).
  combos = list(errors_df.groupby(["model", "beta"], dropna=False))
  columns = max(1, min(len(combos), max_columns))
  rows = max(1, -(-len(combos) // columns))
  fig = mpl_figure.Figure(
      figsize=(2.0 + (0.8 + 1.3 * len(decoders)) * columns,
               0.6 + 3.6 * rows), layout="constrained")
  axes = fig.subplots(rows, columns, squeeze=False, sharey=True)
  for i, ((model, beta), cell) in enumerate(combos):
    ax = axes[i // columns, i % columns]
    _heldout_panel(ax, cell[cell["error"].notna()], decoders, splits,
                   split_colours)
    ax.set_title("%s, %s" % (model, tables.format_strength(model, beta,
                                                           _UNKNOWN_BETA)),
                 fontsize=10)
    ax.set_ylabel("reconstruction error per image\n(nats, lower is better)"
                  if i % columns == 0 else "")
  for ax in axes.flat[max(len(combos), 1):]:
    ax.set_visible(False)
  if not combos:
    _note(axes[0, 0], "no runs")
  fig.suptitle("Generalisation to held-out factor combinations",
               fontsize=11)
  errors = errors_df[errors_df["error"].notna()]
  labels = [s for s in splits if s in set(errors["split"])]
  handles = [mpl_patches.Patch(color=split_colours[s], alpha=0.55)
             for s in labels]
  if len(errors):
    handles.append(mpl_lines.Line2D([], [], color="black", marker="o", ms=4,
                                    mew=1.5, ls=""))
    labels.append("one seed")
  fig.legend(handles, labels, fontsize=8, title="bar: median over seeds",
             title_fontsize=8, loc="outside right center", frameon=False)
  return fig


def plot_heldout_generalisation(errors_df, path,
                                baseline=study_lib.BASELINE):
  """Writes `heldout_generalisation_figure(errors_df)` (PNG); returns path."""
  return save_png(heldout_generalisation_figure(errors_df, baseline), path)
