"""Figures of the Spatial Broadcast study, as in Watters et al. (2019).

Two kinds of figures:
- From the study runner's tidy results DataFrame (one row per run and metric,
  see evaluation/tables.py): per-seed metric distributions and the
  rate-distortion / reconstruction-vs-MIG plots across a beta sweep.
- From one trained dlib model (its TF-Hub module `<model_dir>/tfhub`) and a
  GroundTruthData: latent traversals, the latent-space geometry "grid of
  lines", and per-image reconstruction errors for the held-out experiment.

Each `plot_*` function writes one PNG and returns its path. The DataFrame
figures are built by a matching `*_figure` function returning the matplotlib
Figure, and the model figures by a function returning the plotted numbers,
so both can be checked without reading pixels. Figures are drawn on
`matplotlib.figure.Figure` objects directly (Agg canvas, no pyplot state).
TensorFlow is imported only when a model is loaded.
"""
import collections
import os

import matplotlib
from matplotlib import figure as mpl_figure
from matplotlib import lines as mpl_lines
import numpy as np
import pandas as pd

from evaluation.tables import decoder_order

DPI = 110
BASELINE = "deconv"
# Fixed colours for the two decoders of the study, so that every figure of a
# report uses the same ones; other labels take the remaining tab10 colours.
_FIXED_COLOURS = {"broadcast": "tab:blue", "deconv": "tab:orange"}
_METRIC_ORDER = ["mig", "factor_vae", "dci"]
METRIC_NAMES = {"mig": "MIG", "factor_vae": "FactorVAE score",
                "dci": "DCI disentanglement", "beta_vae": "BetaVAE score",
                "sap": "SAP score", "modularity": "Modularity"}


# --- Shared helpers ---------------------------------------------------------


def decoder_colours(decoders):
  """Returns a dict decoder label -> matplotlib colour (stable per label)."""
  spare = [c for c in ("tab:green", "tab:red", "tab:purple", "tab:brown",
                       "tab:pink", "tab:gray", "tab:olive", "tab:cyan")]
  colours = {}
  for decoder in sorted(set(decoders)):
    colours[decoder] = _FIXED_COLOURS.get(decoder) or spare[
        len([d for d in colours if d not in _FIXED_COLOURS]) % len(spare)]
  return colours


def _metric_order(metrics):
  metrics = set(metrics)
  return ([m for m in _METRIC_ORDER if m in metrics] +
          sorted(metrics - set(_METRIC_ORDER)))


def _save(fig, path):
  directory = os.path.dirname(path)
  if directory:
    os.makedirs(directory, exist_ok=True)
  fig.savefig(path, dpi=DPI)
  return path


def _jitter(n, seed=0, width=0.12):
  # Deterministic, so that re-rendering a report gives identical PNGs.
  return np.random.RandomState(seed).uniform(-width, width, size=n)


def _fmt_beta(beta):
  return "unknown" if pd.isna(beta) else "%g" % beta


# --- Metric distributions ---------------------------------------------------


def metric_distributions_figure(df, baseline=BASELINE):
  """Per-seed metric values per decoder, with the medians marked.

  Args:
    df: Tidy results DataFrame (columns dataset, model, beta, decoder, seed,
      metric, value).
    baseline: Decoder shown first in every panel.

  Returns:
    matplotlib Figure with one column per metric and one row per dataset x
    model x beta combination present in `df`.
  """
  df = df[df["value"].notna()]
  metrics = _metric_order(df["metric"].unique())
  # groupby with dropna=False keeps runs whose beta is unknown (NaN).
  combos = list(df.groupby(["dataset", "model", "beta"], dropna=False))
  several_betas = df["beta"].nunique() > 1
  decoders = decoder_order(df["decoder"].unique(), baseline)
  colours = decoder_colours(decoders)

  fig = mpl_figure.Figure(
      figsize=(1.4 + (0.9 + 0.6 * len(decoders)) * len(metrics),
               0.6 + 2.6 * len(combos)), layout="constrained")
  axes = fig.subplots(len(combos), len(metrics), squeeze=False, sharey="col")
  for r, ((dataset, model, beta), cell) in enumerate(combos):
    row_label = "%s / %s" % (dataset, model)
    if several_betas:
      row_label += " (β=%s)" % _fmt_beta(beta)
    for c, metric in enumerate(metrics):
      ax = axes[r, c]
      values = cell[cell["metric"] == metric]
      labels = []
      for i, decoder in enumerate(decoders):
        v = values[values["decoder"] == decoder]["value"].to_numpy(float)
        labels.append("%s\n(n=%d)" % (decoder, v.size))
        if not v.size:
          continue
        ax.scatter(i + _jitter(v.size, seed=i), v, s=22, alpha=0.75,
                   color=colours[decoder], edgecolor="none", zorder=2)
        ax.hlines(np.median(v), i - 0.28, i + 0.28, color="black", lw=2,
                  zorder=3)
      ax.set_xticks(range(len(decoders)))
      ax.set_xticklabels(labels, fontsize=8)
      ax.set_xlim(-0.6, len(decoders) - 0.4)
      ax.grid(axis="y", alpha=0.3)
      if r == 0:
        ax.set_title(METRIC_NAMES.get(metric, metric))
      if c == 0:
        ax.set_ylabel(row_label + "\nscore", fontsize=9)
  fig.legend(handles=[mpl_lines.Line2D([], [], color="black", lw=2)],
             labels=["median over seeds"], loc="outside lower right",
             fontsize=8, frameon=False)
  return fig


def plot_metric_distributions(df, path, baseline=BASELINE):
  """Writes `metric_distributions_figure(df)` to `path` (PNG); returns path."""
  return _save(metric_distributions_figure(df, baseline), path)


# --- Rate-distortion --------------------------------------------------------


def run_table(df, metric="mig"):
  """One row per run: training statistics and the value of `metric`.

  Args:
    df: Tidy results DataFrame.
    metric: Metric whose value becomes the column named after it (NaN for
      runs without it).

  Returns:
    DataFrame with columns run_id, dataset, model, decoder, seed, beta,
    reconstruction_loss, kl_loss, elbo and `metric`.
  """
  columns = ["run_id", "dataset", "model", "decoder", "seed", "beta",
             "reconstruction_loss", "kl_loss", "elbo"]
  runs = df[columns].drop_duplicates("run_id")
  values = (df[df["metric"] == metric].drop_duplicates("run_id")
            .set_index("run_id")["value"].rename(metric))
  return runs.join(values, on="run_id").reset_index(drop=True)


def _median_curve(ax, runs, x, y, colour, annotate):
  """Draws the per-beta medians of one decoder, joined in beta order."""
  medians = runs.groupby("beta", dropna=False)[[x, y]].median().dropna()
  medians = medians.sort_index()
  if medians.empty:
    return
  ax.plot(medians[x], medians[y], "-o", color=colour, ms=7, lw=1.8,
          markeredgecolor="black", zorder=3)
  if not annotate:
    return
  # Label only the ends of a long sweep, so that labels do not pile up.
  betas = list(medians.index)
  shown = betas if len(betas) <= 4 else [betas[0], betas[-1]]
  shown = [b for b in shown if not pd.isna(b)]
  for beta in shown:
    ax.annotate("β=%s" % _fmt_beta(beta), (medians.loc[beta, x],
                                            medians.loc[beta, y]),
                xytext=(6, 5), textcoords="offset points", fontsize=7,
                color=colour)


def rate_distortion_figure(df, baseline=BASELINE):
  """Rate-distortion and reconstruction-vs-MIG plots across a beta sweep.

  Args:
    df: Tidy results DataFrame (one row per run and metric, with the run's
      reconstruction_loss and kl_loss repeated on each row).
    baseline: Decoder listed first in the legend.

  Returns:
    matplotlib Figure, one row per dataset x model, two panels per row:
    (a) reconstruction loss vs KL, (b) reconstruction loss vs MIG. One point
    per run, one colour per decoder, lines through the per-beta medians.
  """
  runs = run_table(df, "mig")
  combos = list(runs[["dataset", "model"]].drop_duplicates()
                .sort_values(["dataset", "model"]).itertuples(index=False))
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
        ax.scatter(sub[x], sub["reconstruction_loss"], s=18, alpha=0.45,
                   color=colours[decoder], edgecolor="none", zorder=2)
        _median_curve(ax, sub, x, "reconstruction_loss", colours[decoder],
                      annotate=True)
      if cell[x].isna().all():
        ax.text(0.5, 0.5, "no %s values" % x_label, ha="center",
                va="center", transform=ax.transAxes, color="gray")
      ax.set_xlabel(x_label)
      ax.set_ylabel("reconstruction loss (nats)")
      ax.set_title("%s — %s / %s" % (title, dataset, model), fontsize=10)
      ax.grid(alpha=0.3)
  handles = [mpl_lines.Line2D([], [], color=colours[d], marker="o", ls="",
                              alpha=0.6) for d in decoders]
  handles.append(mpl_lines.Line2D([], [], color="gray", marker="o", ls="-",
                                  markeredgecolor="black"))
  fig.legend(handles=handles, labels=decoders + ["median per β"],
             loc="outside lower center", ncol=len(handles), fontsize=9,
             frameon=False)
  return fig


def plot_rate_distortion(df, path, baseline=BASELINE):
  """Writes `rate_distortion_figure(df)` to `path` (PNG); returns path."""
  return _save(rate_distortion_figure(df, baseline), path)


# --- Loading a trained model ------------------------------------------------


def _sigmoid(x):
  return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _half_tanh(x):
  return np.tanh(x) / 2.0 + 0.5  # dlib's "tanh" activation (visualize_model)


class HubModel(object):
  """A trained dlib model's TF-Hub module, evaluated on numpy batches.

  Follows dlib's visualize_model / postprocess pattern (the module in its own
  tf.Graph, one session) but keeps the graph open across calls so that a
  figure needing several encoder/decoder passes loads the module once. Use as
  a context manager or call `close()`.

  Attributes:
    model_dir: The model folder.
    observation_shape: List [height, width, channels] of the encoder input.
    num_latent: Integer, latent size.
    activation: "logits" or "tanh", from the model's train.gin (how dlib turns
      decoder outputs into pixel values).
  """

  def __init__(self, model_dir, batch_size=64):
    import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_hub as hub  # pylint: disable=g-import-not-at-top
    self.model_dir = model_dir
    self.batch_size = batch_size
    self.activation = _train_gin(model_dir).get(
        "reconstruction_loss.activation", "'logits'").strip("'\"")
    if self.activation not in ("logits", "tanh"):
      raise ValueError("Unknown activation %r in %s." % (self.activation,
                                                         model_dir))
    self._graph = tf.Graph()
    with self._graph.as_default():
      module = hub.Module(os.path.join(model_dir, "tfhub"))
      image_info = module.get_input_info_dict("gaussian_encoder")["images"]
      latent_info = module.get_input_info_dict("decoder")["latent_vectors"]
      self.observation_shape = image_info.get_shape().as_list()[1:]
      self.num_latent = latent_info.get_shape().as_list()[1]
      self._images = tf.placeholder(image_info.dtype, image_info.get_shape())
      self._latents = tf.placeholder(latent_info.dtype,
                                     latent_info.get_shape())
      encoded = module(dict(images=self._images),
                       signature="gaussian_encoder", as_dict=True)
      self._mean, self._logvar = encoded["mean"], encoded["logvar"]
      self._logits = module(dict(latent_vectors=self._latents),
                            signature="decoder", as_dict=True)["images"]
      # hub.Module variables restore from the module's checkpoint on init.
      init_ops = [tf.global_variables_initializer(), tf.tables_initializer()]
    self._session = tf.Session(graph=self._graph)
    self._session.run(init_ops)

  def _batched(self, fetches, placeholder, inputs):
    """Runs `fetches` over `inputs` in batches; concatenates each fetch."""
    size = self.batch_size
    outputs = [self._session.run(fetches, {placeholder: inputs[i:i + size]})
               for i in range(0, len(inputs), size)]
    return [np.concatenate([o[k] for o in outputs])
            for k in range(len(fetches))]

  def encode(self, images):
    """Returns (mean, logvar) of the Gaussian posterior, each [N, latents]."""
    mean, logvar = self._batched([self._mean, self._logvar], self._images,
                                 np.asarray(images, np.float32))
    return mean, logvar

  def decode_logits(self, latents):
    """Returns the decoder's raw outputs [N, H, W, C] for latent vectors."""
    return self._batched([self._logits], self._latents,
                         np.asarray(latents, np.float32))[0]

  def decode(self, latents):
    """Returns images in [0, 1]: the model's activation of the decoder."""
    logits = self.decode_logits(latents)
    return _sigmoid(logits) if self.activation == "logits" else _half_tanh(
        logits)

  def close(self):
    self._session.close()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc):
    self.close()


def _train_gin(model_dir):
  """The model's saved train.gin as dlib's {binding: value string} dict."""
  path = os.path.join(model_dir, "results", "gin", "train.gin")
  if not os.path.exists(path):
    return {}
  from disentanglement_lib.utils import results  # pylint: disable=g-import-not-at-top
  return results.gin_dict(path)


def load_model(model_dir):
  """Loads `<model_dir>/tfhub`; returns a HubModel (encode/decode callables).

  Args:
    model_dir: A trained dlib model folder (with tfhub/ and results/gin/).

  Returns:
    HubModel; close it (or use it in a `with` block) when done.
  """
  return HubModel(model_dir)


class _Opened(object):
  """Context giving a model for a path, or the given open model unchanged.

  Anything that is not a path is used as is: a HubModel, or any object with
  the same encode / decode / decode_logits / activation interface (tests).
  """

  def __init__(self, model):
    self._own = isinstance(model, (str, os.PathLike))
    self._model = load_model(model) if self._own else model

  def __enter__(self):
    return self._model

  def __exit__(self, *unused_exc):
    if self._own:
      self._model.close()


# --- Latent traversals ------------------------------------------------------


def latent_order(mean_variances, max_variance=0.8, max_latents=None):
  """Latents to show, most informative first, without non-coding ones.

  A latent the encoder ignores keeps the prior's variance (about 1) for every
  input, so a low average posterior variance means the latent carries
  information.

  Args:
    mean_variances: 1-D array, average posterior variance of each latent.
    max_variance: Latents with a larger average variance are dropped.
    max_latents: Optional cap on the number returned.

  Returns:
    1-D int array of latent indices in ascending order of average variance;
    at least one index (the smallest variance) even if all are non-coding.
  """
  mean_variances = np.asarray(mean_variances, dtype=float)
  order = np.argsort(mean_variances, kind="stable")
  keep = order[mean_variances[order] <= max_variance]
  if keep.size == 0:
    keep = order[:1]
  if max_latents is not None:
    keep = keep[:max(1, int(max_latents))]
  return keep


Traversals = collections.namedtuple(
    "Traversals", ["seed_image", "reconstruction", "images", "latents",
                   "mean_variances", "values"])


def traversal_images(model, ground_truth_data, num_values=7, seed=0,
                     max_latents=None, num_variance_samples=64):
  """Computes the traversal grid of `plot_traversals`.

  Args:
    model: HubModel or model folder.
    ground_truth_data: dlib GroundTruthData the model was trained on.
    num_values: Number of steps from -2 to +2.
    seed: Seed of the random state sampling the images.
    max_latents: Optional cap on the number of latents shown.
    num_variance_samples: Images averaged over for the posterior variances;
      the first one is the seed image.

  Returns:
    Traversals: seed_image [H, W, C], its reconstruction from the posterior
    mean, images [L, num_values, H, W, C] (one row per shown latent),
    latents (the L shown indices, ordered), mean_variances (all latents) and
    values (the num_values latent values swept).
  """
  random_state = np.random.RandomState(seed)
  batch = ground_truth_data.sample_observations(num_variance_samples,
                                                random_state)
  values = np.linspace(-2.0, 2.0, num_values)
  with _Opened(model) as m:
    mean, logvar = m.encode(batch)
    mean_variances = np.exp(logvar).mean(axis=0)
    latents = latent_order(mean_variances, max_latents=max_latents)
    seed_point = mean[0]
    codes = np.repeat(seed_point[None, :], len(latents) * num_values, axis=0)
    for row, latent in enumerate(latents):
      codes[row * num_values:(row + 1) * num_values, latent] = values
    images = m.decode(codes)
    reconstruction = m.decode(seed_point[None, :])[0]
  images = images.reshape((len(latents), num_values) + images.shape[1:])
  return Traversals(batch[0], reconstruction, images, latents,
                    mean_variances, values)


def _tile(images, padding=2, fill=1.0):
  """Tiles images [R, C, H, W, ch] into one [R*(H+p)-p, C*(W+p)-p, ch]."""
  rows, cols, h, w, ch = images.shape
  canvas = np.full((rows * (h + padding) - padding,
                    cols * (w + padding) - padding, ch), fill, np.float32)
  for r in range(rows):
    for c in range(cols):
      canvas[r * (h + padding):r * (h + padding) + h,
             c * (w + padding):c * (w + padding) + w] = images[r, c]
  return canvas


def _show(ax, image):
  image = np.clip(image, 0.0, 1.0)
  if image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
  else:
    ax.imshow(image, interpolation="nearest")


def traversals_figure(traversals):
  """Draws a Traversals tuple; returns the matplotlib Figure."""
  t = traversals
  rows, cols, h, w = t.images.shape[:4]
  padding = 2
  cell = 0.75  # inches per image
  # At least two rows high: the input and reconstruction panels need room.
  fig = mpl_figure.Figure(
      figsize=(2.6 + cell * cols, 1.2 + 1.1 * cell * max(rows, 2)),
      layout="constrained")
  grid = fig.add_gridspec(max(rows, 2), 2, width_ratios=[1.3, cols])
  ax_in = fig.add_subplot(grid[0, 0])
  ax_rec = fig.add_subplot(grid[1, 0])
  for ax, image, title in ((ax_in, t.seed_image, "input"),
                           (ax_rec, t.reconstruction, "reconstruction")):
    _show(ax, image)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
  ax = fig.add_subplot(grid[:, 1])
  _show(ax, _tile(t.images, padding))
  ax.set_yticks([r * (h + padding) + h / 2 for r in range(rows)])
  ax.set_yticklabels(["z%d  (σ²=%.2f)" % (k, t.mean_variances[k])
                      for k in t.latents], fontsize=8)
  ax.set_xticks([c * (w + padding) + w / 2 for c in range(cols)])
  ax.set_xticklabels(["%+.1f" % v for v in t.values], fontsize=8)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)
  ax.set_xlabel("latent value (others at the input's posterior mean)",
                fontsize=9)
  ax.set_title("Latent traversals, ordered by mean posterior variance σ²",
               fontsize=10)
  return fig


def plot_traversals(model_dir, ground_truth_data, path, num_values=7, seed=0,
                    max_latents=None):
  """Writes the latent traversals of one seed image (PNG).

  The seed image is encoded; each shown latent is swept from -2 to +2 while
  the others stay at the seed's posterior mean, and decoded. Latents are
  ordered by average posterior variance over a batch (most informative first)
  and non-coding ones (average variance > 0.8) are left out.

  Args:
    model_dir: Trained dlib model folder (or an open HubModel).
    ground_truth_data: dlib GroundTruthData the model was trained on.
    path: Output PNG path.
    num_values: Number of traversal steps.
    seed: Seed choosing the images.
    max_latents: Optional cap on the number of rows.

  Returns:
    path.
  """
  traversals = traversal_images(model_dir, ground_truth_data, num_values,
                                seed, max_latents)
  return _save(traversals_figure(traversals), path)


# --- Latent-space geometry --------------------------------------------------


def evenly_spaced_indices(num_values, num_points):
  """min(num_points, num_values) distinct, evenly spread indices of a factor.

  Args:
    num_values: Number of values of the (discrete) factor.
    num_points: Wanted number of points.

  Returns:
    Sorted 1-D int array from 0 to num_values - 1 (both ends included when
    at least two points fit).
  """
  k = max(1, min(int(num_points), int(num_values)))
  # With k <= num_values the step is >= 1, so rounding keeps them distinct.
  return np.round(np.linspace(0, num_values - 1, k)).astype(int)


GridLine = collections.namedtuple("GridLine", ["along", "level", "points"])


def grid_of_lines(num_values_x, num_values_y, num_lines=6,
                  points_per_line=31):
  """The paper's grid of lines in the index space of two factors.

  Args:
    num_values_x: Number of values of the first factor.
    num_values_y: Number of values of the second factor.
    num_lines: Lines in each direction (fewer if a factor has fewer values).
    points_per_line: Points on each line (fewer if the factor has fewer).

  Returns:
    List of GridLine(along, level, points): first the lines along x (along
    "x", at y index `level`), then those along y; `points` is an int array
    [P, 2] of (x index, y index) pairs in order along the line.
  """
  lines = []
  xs = evenly_spaced_indices(num_values_x, points_per_line)
  for iy in evenly_spaced_indices(num_values_y, num_lines):
    lines.append(GridLine("x", int(iy),
                          np.stack([xs, np.full_like(xs, iy)], axis=1)))
  ys = evenly_spaced_indices(num_values_y, points_per_line)
  for ix in evenly_spaced_indices(num_values_x, num_lines):
    lines.append(GridLine("y", int(ix),
                          np.stack([np.full_like(ys, ix), ys], axis=1)))
  return lines


Geometry = collections.namedtuple(
    "Geometry", ["lines", "latent_points", "latents", "mean_variances",
                 "factor_x", "factor_y", "base_factors"])


def _abs_corr(a, b):
  if np.std(a) == 0 or np.std(b) == 0:
    return 0.0
  return abs(float(np.corrcoef(a, b)[0, 1]))


def latent_geometry(model, ground_truth_data, factor_x, factor_y, num_lines=6,
                    points_per_line=31, seed=0):
  """Encodes the grid of lines; computes what `plot_latent_geometry` draws.

  Args:
    model: HubModel or model folder.
    ground_truth_data: dlib GroundTruthData with discrete factors.
    factor_x: Index of the factor laid out horizontally.
    factor_y: Index of the factor laid out vertically.
    num_lines: Lines per direction.
    points_per_line: Points per line.
    seed: Seed of the sample giving the other factors' values (and of the
      observation sampling).

  Returns:
    Geometry: lines (see `grid_of_lines`), latent_points (list of [P, 2]
    posterior means of the two chosen latents, per line), latents (the
    chosen pair: the one tracking factor_x first), mean_variances (all
    latents, averaged over the grid's images), factor_x, factor_y and
    base_factors.
  """
  if factor_x == factor_y:
    raise ValueError("factor_x and factor_y must differ.")
  num_values = ground_truth_data.factors_num_values
  random_state = np.random.RandomState(seed)
  base = np.asarray(ground_truth_data.sample_factors(1, random_state))[0]
  lines = grid_of_lines(num_values[factor_x], num_values[factor_y], num_lines,
                        points_per_line)
  points = np.concatenate([line.points for line in lines])
  factors = np.repeat(base[None, :], len(points), axis=0).astype(np.int64)
  factors[:, factor_x], factors[:, factor_y] = points[:, 0], points[:, 1]
  images = ground_truth_data.sample_observations_from_factors(factors,
                                                              random_state)
  with _Opened(model) as m:
    mean, logvar = m.encode(images)
  mean_variances = np.exp(logvar).mean(axis=0)
  pair = np.argsort(mean_variances, kind="stable")[:2]
  if len(pair) == 2 and (
      _abs_corr(mean[:, pair[1]], points[:, 0]) >
      _abs_corr(mean[:, pair[0]], points[:, 0])):
    pair = pair[::-1]  # put the latent that follows factor_x on the x axis
  splits = np.cumsum([len(line.points) for line in lines])[:-1]
  latent_points = np.split(mean[:, pair], splits)
  return Geometry(lines, latent_points, pair, mean_variances, factor_x,
                  factor_y, base)


def _line_colours(lines):
  """Blues for lines along x, oranges/reds for lines along y."""
  colours = []
  for along, cmap in (("x", "Blues"), ("y", "Oranges")):
    n = sum(1 for line in lines if line.along == along)
    shades = matplotlib.colormaps[cmap](np.linspace(0.45, 0.95, max(n, 1)))
    colours.extend(shades[:n])
  return colours


def _factor_label(ground_truth_data, index):
  names = getattr(ground_truth_data, "factor_names", None)
  try:
    return "factor %d (%s)" % (index, names[index])
  except (TypeError, IndexError):
    return "factor %d" % index


def latent_geometry_figure(geometry, ground_truth_data=None):
  """Draws a Geometry tuple: ground-truth grid and latent grid panels."""
  g = geometry
  colours = _line_colours(g.lines)
  fig = mpl_figure.Figure(figsize=(10, 4.8), layout="constrained")
  ax_true, ax_latent = fig.subplots(1, 2)
  for line, latent, colour in zip(g.lines, g.latent_points, colours):
    for ax, xy in ((ax_true, line.points), (ax_latent, latent)):
      ax.plot(xy[:, 0], xy[:, 1], "-", color=colour, lw=1.0, alpha=0.8)
      ax.scatter(xy[:, 0], xy[:, 1], s=10, color=colour, zorder=3)
  ax_true.set_xlabel(_factor_label(ground_truth_data, g.factor_x) +
                     " index")
  ax_true.set_ylabel(_factor_label(ground_truth_data, g.factor_y) +
                     " index")
  ax_true.set_title("Ground truth: grid of lines in factor space",
                    fontsize=10)
  ax_true.set_aspect("equal", adjustable="datalim")
  if len(g.latents) == 2:
    ax_latent.set_xlabel("z%d posterior mean (σ²=%.2f)"
                         % (g.latents[0], g.mean_variances[g.latents[0]]))
    ax_latent.set_ylabel("z%d posterior mean (σ²=%.2f)"
                         % (g.latents[1], g.mean_variances[g.latents[1]]))
  ax_latent.set_title("Encoded: the two latents with the smallest variance",
                      fontsize=10)
  handles = [mpl_lines.Line2D([], [], color=matplotlib.colormaps[c](0.8),
                              marker="o", ms=4) for c in ("Blues", "Oranges")]
  fig.legend(handles=handles,
             labels=["lines along the x factor", "lines along the y factor"],
             loc="outside lower center", ncol=2, fontsize=9, frameon=False)
  return fig


def plot_latent_geometry(model_dir, ground_truth_data, path, factor_x,
                         factor_y, num_lines=6, points_per_line=31, seed=0):
  """Writes the latent-space geometry "grid of lines" figure (PNG).

  All factors but two are held at a seed sample's values; lines along
  factor_x at fixed factor_y values and vice versa are rendered, encoded and
  the posterior means of the two latents with the smallest average posterior
  variance are scattered in the colours of the ground-truth grid. A
  disentangled model keeps the grid up to an affine map.

  Args:
    model_dir: Trained dlib model folder (or an open HubModel).
    ground_truth_data: dlib GroundTruthData with discrete factors.
    path: Output PNG path.
    factor_x: Index of the first factor (e.g. x position).
    factor_y: Index of the second factor (e.g. y position).
    num_lines: Lines per direction.
    points_per_line: Points per line (clipped to the factor's values).
    seed: Seed of the sample fixing the other factors.

  Returns:
    path.
  """
  geometry = latent_geometry(model_dir, ground_truth_data, factor_x, factor_y,
                             num_lines, points_per_line, seed)
  return _save(latent_geometry_figure(geometry, ground_truth_data), path)


# --- Held-out generalisation ------------------------------------------------


def bernoulli_errors(images, logits, activation="logits"):
  """Per-image Bernoulli cross-entropy summed over pixels (dlib's loss).

  Matches disentanglement_lib's `bernoulli_loss` without the true-image
  entropy subtraction, i.e. the `reconstruction_loss` dlib reports in its
  train results, so the numbers are on the same scale.

  Args:
    images: Targets in [0, 1], [N, ...].
    logits: Decoder outputs, same shape.
    activation: "logits" (sigmoid) or "tanh", as in the model's train.gin.

  Returns:
    1-D float array of length N.
  """
  x = np.asarray(images, np.float64).reshape(len(images), -1)
  l = np.asarray(logits, np.float64).reshape(len(logits), -1)
  if activation == "logits":
    # Stable form of sigmoid_cross_entropy_with_logits.
    xent = np.maximum(l, 0) - l * x + np.log1p(np.exp(-np.abs(l)))
  else:
    p = np.clip(_half_tanh(l), 1e-6, 1 - 1e-6)
    xent = -(x * np.log(p) + (1 - x) * np.log(1 - p))
  return xent.sum(axis=1)


def reconstruction_errors(model_dir, ground_truth_data, num_samples, seed):
  """Per-image reconstruction errors of a trained model.

  Images are reconstructed from the posterior mean (encoder, then decoder),
  not with the "reconstructions" signature, which samples the latent and
  would add noise to a comparison between runs. The error is the Bernoulli
  cross-entropy summed over pixels (`bernoulli_errors`), in nats per image.

  Args:
    model_dir: Trained dlib model folder (or an open HubModel).
    ground_truth_data: GroundTruthData to draw the images from (e.g. the
      held-out split).
    num_samples: Number of images.
    seed: Seed of the image sampling.

  Returns:
    1-D numpy array of num_samples errors.
  """
  images = ground_truth_data.sample_observations(
      num_samples, np.random.RandomState(seed))
  with _Opened(model_dir) as m:
    mean, _ = m.encode(images)
    logits = m.decode_logits(mean)
    activation = m.activation
  return bernoulli_errors(images, logits, activation)


SPLITS = ("seen", "held-out")


def heldout_generalisation_figure(errors_df, baseline=BASELINE):
  """Seen vs held-out reconstruction error per decoder.

  Args:
    errors_df: Tidy DataFrame with columns decoder, seed, split ("seen" or
      "held-out") and error (the run's mean per-image error).
    baseline: Decoder shown first.

  Returns:
    matplotlib Figure: per decoder, one bar per split at the median over
    seeds, with the per-seed errors as points.
  """
  decoders = decoder_order(errors_df["decoder"].unique(), baseline)
  splits = [s for s in SPLITS if s in set(errors_df["split"])] + sorted(
      set(errors_df["split"]) - set(SPLITS))
  split_colours = dict(zip(splits, ["#9ecae1", "#de2d26", "#a1d99b",
                                    "#bcbddc"]))
  width = 0.8 / len(splits)
  fig = mpl_figure.Figure(figsize=(1.8 + 1.6 * len(decoders), 4.2),
                          layout="constrained")
  ax = fig.subplots()
  for i, decoder in enumerate(decoders):
    for j, split in enumerate(splits):
      errors = errors_df[(errors_df["decoder"] == decoder) &
                         (errors_df["split"] == split)]["error"].to_numpy(
                             float)
      errors = errors[~np.isnan(errors)]
      if not errors.size:
        continue
      x = i + (j - (len(splits) - 1) / 2) * width
      ax.bar(x, np.median(errors), width * 0.9, color=split_colours[split],
             alpha=0.55, edgecolor=split_colours[split],
             label=split if i == 0 else None)
      ax.scatter(x + _jitter(errors.size, seed=j, width=width * 0.25), errors,
                 s=16, color="black", zorder=3,
                 label="one seed" if (i, j) == (0, 0) else None)
  ax.set_xticks(range(len(decoders)))
  ax.set_xticklabels(decoders)
  ax.set_ylabel("reconstruction error per image\n(nats, lower is better)")
  ax.set_title("Generalisation to held-out factor combinations", fontsize=10)
  ax.grid(axis="y", alpha=0.3)
  handles, labels = ax.get_legend_handles_labels()
  order = [labels.index(l) for l in splits + ["one seed"] if l in labels]
  ax.legend([handles[i] for i in order], [labels[i] for i in order],
            fontsize=8, title="bar: median over seeds", title_fontsize=8,
            loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
  return fig


def plot_heldout_generalisation(errors_df, path, baseline=BASELINE):
  """Writes `heldout_generalisation_figure(errors_df)` (PNG); returns path."""
  return _save(heldout_generalisation_figure(errors_df, baseline), path)
