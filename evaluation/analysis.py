"""Numbers from trained models: what the report's model figures show.

Loads a trained dlib model's TF-Hub module (`<model_dir>/tfhub`) and computes,
on numpy arrays: latent traversals of a seed image (`traversal_images`, and
`traversal_comparison` for several models on the same image), the
latent-space geometry of a grid of lines in two factors (`latent_geometry`),
per-image reconstruction errors (`reconstruction_errors`) and the seen vs
held-out errors of a study's runs (`heldout_errors`). The arithmetic lives in
pure functions of arrays (`latent_order`, `grid_of_lines`, `factor_r2`,
`choose_latent_pair`, `region_box`, `bernoulli_errors`) that tests call
directly. Drawing is evaluation/figures.py's job.

Functions that need a model take a HubModel (or any object with the same
encode / decode / decode_logits / activation interface) or a model folder,
which is then loaded and closed around the call. TensorFlow is imported only
when a model is loaded.
"""
import collections
import os

import gin
import numpy as np
import pandas as pd
from scipy import special

from evaluation import layout

# The two splits of the held-out experiment, in the order figures show them.
SPLITS = ("seen", "held-out")


# --- Datasets -----------------------------------------------------------------


def load_dataset(name, bindings=()):
  """Builds a dataset the way dlib's steps do, from its name and bindings.

  Clears the process-wide gin config before parsing the bindings and again
  afterwards (dlib's `named_data` reads `dataset.name` and the dataset's
  parameters from the global config, so nothing else may be bound then). Any
  gin config the caller had is lost: call it only where no other gin-configured
  code of this process still needs its config, as in the report.

  Args:
    name: dlib dataset name (`dataset.name`).
    bindings: Gin bindings of the dataset's parameters (the study's
      `dataset_bindings`), e.g. "colored_sprites.num_hue_bins = 4".

  Returns:
    dlib GroundTruthData.
  """
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    gin.parse_config(list(bindings) + ["dataset.name = '%s'" % name])
    return named_data.get_named_ground_truth_data()
  finally:
    gin.clear_config()


# --- Loading a trained model ------------------------------------------------


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
      module = hub.Module(layout.tfhub_dir(model_dir))
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
    return special.expit(logits) if self.activation == "logits" else (
        _half_tanh(logits))

  def close(self):
    self._session.close()

  def __enter__(self):
    return self

  def __exit__(self, *unused_exc):
    self.close()


def _train_gin(model_dir):
  """The model's saved train.gin as dlib's {binding: value string} dict."""
  path = layout.step_gin(model_dir, "train")
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


def _traverse(model, batch, num_values, max_latents):
  """Traversals of batch[0] by an open model; see `traversal_images`."""
  values = np.linspace(-2.0, 2.0, num_values)
  mean, logvar = model.encode(batch)
  mean_variances = np.exp(logvar).mean(axis=0)
  latents = latent_order(mean_variances, max_latents=max_latents)
  seed_point = mean[0]
  codes = np.repeat(seed_point[None, :], len(latents) * num_values, axis=0)
  for row, latent in enumerate(latents):
    codes[row * num_values:(row + 1) * num_values, latent] = values
  images = model.decode(codes)
  reconstruction = model.decode(seed_point[None, :])[0]
  images = images.reshape((len(latents), num_values) + images.shape[1:])
  return Traversals(batch[0], reconstruction, images, latents,
                    mean_variances, values)


def traversal_images(model, ground_truth_data, num_values=7, seed=0,
                     max_latents=None, num_variance_samples=64):
  """Latent traversals of one seed image.

  The seed image is encoded; each shown latent is swept from -2 to +2 while
  the others stay at the seed's posterior mean, and decoded. Latents are
  ordered by average posterior variance over a batch (most informative first)
  and non-coding ones are left out (see `latent_order`).

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
  return traversal_comparison({None: model}, ground_truth_data, num_values,
                              seed, max_latents, num_variance_samples)[None]


def traversal_comparison(models, ground_truth_data, num_values=7, seed=0,
                         max_latents=None, num_variance_samples=64):
  """Latent traversals of several models from the same input image.

  The images are sampled once and handed to every model, so all traversals
  start from the same seed image (the one `traversal_images` uses for this
  seed) and average their posterior variances over the same batch. Each
  model's latents are ordered and filtered by its own variances, as in
  `traversal_images`.

  Args:
    models: Dict label (e.g. the decoder) -> HubModel or model folder, all
      trained on `ground_truth_data`'s dataset.
    ground_truth_data: dlib GroundTruthData.
    num_values: Number of steps from -2 to +2.
    seed: Seed of the random state sampling the images.
    max_latents: Optional cap on the number of latents shown per model.
    num_variance_samples: Images averaged over for the posterior variances;
      the first one is the seed image.

  Returns:
    Dict label -> Traversals, in the order of `models`; every seed_image is
    the same array.
  """
  batch = ground_truth_data.sample_observations(
      num_variance_samples, np.random.RandomState(seed))
  traversals = {}
  for label, model in models.items():
    with _Opened(model) as m:
      traversals[label] = _traverse(m, batch, num_values, max_latents)
  return traversals


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


# factor_names: the dataset's factor names (None if it has none), so that a
# figure can label its axes without the dataset. scores: the R^2 of the
# chosen latents with factor_x and factor_y; r2: [num_latents, 2], every
# latent's R^2 with factor_x and with factor_y (see `factor_r2`). region_box
# and in_region: where the grid meets the held-out region, None without one
# (see `latent_geometry`).
Geometry = collections.namedtuple(
    "Geometry", ["lines", "latent_points", "latents", "mean_variances",
                 "factor_x", "factor_y", "base_factors", "factor_names",
                 "scores", "r2", "region_box", "in_region"],
    defaults=(None,) * 5)


def factor_r2(means, factor_values, posterior_variances=None):
  """R^2 of a least-squares line of each latent against a factor.

  Without posterior variances, the squared Pearson correlation of the
  posterior means with the factor. With them, the R^2 of a posterior sample
  z = mean + noise, the code the decoder sees: the variance the line explains
  over the variance of z (that of the means plus the average posterior
  variance). That one is small for a latent whose mean moves with the factor
  by much less than its posterior noise; for jointly Gaussian factor and
  latent, the mutual information between them is -log(1 - R^2) / 2.

  Args:
    means: Posterior means [N, num_latents].
    factor_values: The factor's value (or index) at each point, [N].
    posterior_variances: Optional average posterior variance of each latent
      over the points, [num_latents].

  Returns:
    1-D array [num_latents] in [0, 1]; 0 for a latent (or factor) that is
    constant over the points.
  """
  means = np.asarray(means, np.float64)
  factor = np.asarray(factor_values, np.float64)
  m = means - means.mean(axis=0)
  f = factor - factor.mean()
  spread = (m ** 2).mean(axis=0)  # variance of the means
  total = spread if posterior_variances is None else (
      spread + np.asarray(posterior_variances, np.float64))
  explained = np.zeros_like(spread)
  if (f ** 2).mean() > 0:
    explained = (m * f[:, None]).mean(axis=0) ** 2 / (f ** 2).mean()
  with np.errstate(invalid="ignore", divide="ignore"):
    r2 = np.where(total > 0, explained / total, 0.0)
  return np.clip(r2, 0.0, 1.0)


def choose_latent_pair(r2_x, r2_y, candidates):
  """The latent tracking factor x best, then the best other one for y.

  Args:
    r2_x: 1-D array, each latent's score with the x factor (`factor_r2`).
    r2_y: 1-D array, each latent's score with the y factor.
    candidates: Latent indices to choose from, in order of preference for
      ties (e.g. ascending average posterior variance).

  Returns:
    (latents, scores): int array [2] (x latent, y latent) and float array [2]
    (r2_x of the first, r2_y of the second); length 1 if there is only one
    candidate.
  """
  candidates = [int(c) for c in candidates]
  # max() keeps the first of equal scores: ties go to the preferred latent.
  x = max(candidates, key=lambda k: r2_x[k])
  rest = [c for c in candidates if c != x]
  if not rest:
    return np.array([x]), np.array([r2_x[x]], float)
  y = max(rest, key=lambda k: r2_y[k])
  return np.array([x, y]), np.array([r2_x[x], r2_y[y]], float)


def region_box(region, base_factors, factor_x, factor_y, num_values_x,
               num_values_y):
  """Where a held-out region meets the plane of two factors, as a box.

  Args:
    region: Object whose `contains(factors [N, num_factors])` says which
      factor-index rows lie in the region (sbd_plugin's HoldoutRegion).
    base_factors: Factor indices of the plane's other factors, [num_factors].
    factor_x: Index of the plane's horizontal factor.
    factor_y: Index of its vertical factor.
    num_values_x: Number of values of factor_x.
    num_values_y: Number of values of factor_y.

  Returns:
    (x_low, x_high, y_low, y_high), inclusive factor indices of the bounding
    box of the plane's points inside the region, or None if there are none
    (e.g. the base shape is not in the region).
  """
  ix, iy = np.meshgrid(np.arange(num_values_x), np.arange(num_values_y),
                       indexing="ij")
  plane = np.repeat(np.asarray(base_factors)[None, :], ix.size,
                    axis=0).astype(np.int64)
  plane[:, factor_x], plane[:, factor_y] = ix.ravel(), iy.ravel()
  inside = np.asarray(region.contains(plane)).reshape(ix.shape)
  if not inside.any():
    return None
  xs, ys = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(
      inside.any(axis=0))
  return (int(xs[0]), int(xs[-1]), int(ys[0]), int(ys[-1]))


def latent_geometry(model, ground_truth_data, factor_x, factor_y, num_lines=6,
                    points_per_line=31, seed=0, region=None):
  """Encodes the paper's grid of lines in two factors.

  All factors but two are held at a seed sample's values; lines along
  factor_x at fixed factor_y values and vice versa are rendered and encoded.
  A disentangled model keeps the grid up to an affine map.

  The two latents shown are those that track the two factors, scored by
  R^2 over the grid's points (`factor_r2` with the posterior variances): the
  fraction of a latent's variance (the spread of its posterior means plus
  its average posterior variance) that a line in the factor index explains.
  The latent with the highest R^2 for factor_x goes on the x axis, the best
  other one for factor_y on the y axis (`choose_latent_pair`; ties go to the
  lower average posterior variance). The paper's choice, the two latents of
  lowest posterior variance, need not be the position latents. R^2 rather
  than a nonparametric mutual-information estimate because it scores what
  the figure shows, an affine image of the grid (mutual information also
  rewards a folded, non-monotone map); it is deterministic and lies in
  [0, 1], so the score in the figure's labels reads the same for every
  model; and it is the Gaussian approximation of that mutual information
  (see `factor_r2`). Counting the posterior variance keeps a latent whose
  mean follows position by much less than its noise (a non-coding latent,
  or one that codes another factor and leaks a little position) from
  scoring high; on the grid, where only the two factors vary, a latent
  tracking the other factor scores about 0.

  Args:
    model: HubModel or model folder.
    ground_truth_data: dlib GroundTruthData with discrete factors.
    factor_x: Index of the factor laid out horizontally.
    factor_y: Index of the factor laid out vertically.
    num_lines: Lines per direction.
    points_per_line: Points per line (clipped to the factor's values).
    seed: Seed of the sample giving the other factors' values (and of the
      observation sampling).
    region: Optional held-out region of the model's training (an object
      with `contains(factors)`, such as the `region` of
      colored_sprites_holdout_train). The grid is rendered whole either way.

  Returns:
    Geometry: lines (see `grid_of_lines`), latent_points (list of [P, 2]
    posterior means of the two chosen latents, per line), latents (the
    chosen pair: the one tracking factor_x first), mean_variances (all
    latents, averaged over the grid's images), factor_x, factor_y,
    base_factors, factor_names (the dataset's, or None), scores (R^2 of the
    pair with factor_x and factor_y), r2 (every latent's, [num_latents, 2]);
    with a region, region_box (see `region_box`, None if the grid's plane
    misses the region) and in_region (list of bool [P] per line), else None.

  Raises:
    ValueError: if factor_x == factor_y.
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
  r2 = np.stack([factor_r2(mean, points[:, i], mean_variances)
                 for i in (0, 1)], axis=1)
  pair, scores = choose_latent_pair(
      r2[:, 0], r2[:, 1], np.argsort(mean_variances, kind="stable"))
  splits = np.cumsum([len(line.points) for line in lines])[:-1]
  box = in_region = None
  if region is not None:
    box = region_box(region, base, factor_x, factor_y, num_values[factor_x],
                     num_values[factor_y])
    in_region = np.split(np.asarray(region.contains(factors), bool), splits)
  return Geometry(lines, np.split(mean[:, pair], splits), pair,
                  mean_variances, factor_x, factor_y, base,
                  getattr(ground_truth_data, "factor_names", None), scores,
                  r2, box, in_region)


# --- Reconstruction errors --------------------------------------------------


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


def reconstruction_errors(model, ground_truth_data, num_samples, seed):
  """Per-image reconstruction errors of a trained model.

  Images are reconstructed from the posterior mean (encoder, then decoder),
  not with the "reconstructions" signature, which samples the latent and
  would add noise to a comparison between runs. The error is the Bernoulli
  cross-entropy summed over pixels (`bernoulli_errors`), in nats per image.

  Args:
    model: HubModel or model folder.
    ground_truth_data: GroundTruthData to draw the images from (e.g. the
      held-out split).
    num_samples: Number of images.
    seed: Seed of the image sampling.

  Returns:
    1-D numpy array of num_samples errors.
  """
  images = ground_truth_data.sample_observations(
      num_samples, np.random.RandomState(seed))
  with _Opened(model) as m:
    mean, _ = m.encode(images)
    logits = m.decode_logits(mean)
    activation = m.activation
  return bernoulli_errors(images, logits, activation)


def heldout_errors(frame, seen, heldout, bindings=(), num_samples=512):
  """Mean reconstruction error per run on seen and held-out data.

  Loads the two datasets with `load_dataset`, which clears the process-wide
  gin config.

  Args:
    frame: Tidy results DataFrame (columns run_id, dataset, model, beta,
      decoder, seed, model_dir, ...).
    seen: Name of the dataset the models were trained on; only its runs are
      evaluated (only they have a held-out region).
    heldout: Name of the dataset of the held-out region.
    bindings: Gin bindings of the datasets' parameters (the seen dataset's,
      which the held-out twin shares).
    num_samples: Images per run and split.

  Returns:
    DataFrame with columns run_id, model, beta (NaN where unknown), decoder,
    seed, split (SPLITS) and error, one row per run and split.
  """
  runs = frame[frame["dataset"] == seen].drop_duplicates("run_id")
  data = {split: load_dataset(name, bindings)
          for split, name in zip(SPLITS, (seen, heldout))}
  rows = []
  for run in runs.itertuples():
    with load_model(run.model_dir) as model:  # Loaded once per run.
      for split, dataset in data.items():
        errors = reconstruction_errors(model, dataset, num_samples, seed=0)
        rows.append({"run_id": run.run_id, "model": run.model,
                     "beta": run.beta, "decoder": run.decoder,
                     "seed": run.seed, "split": split,
                     "error": float(errors.mean())})
  return pd.DataFrame(rows, columns=["run_id", "model", "beta", "decoder",
                                     "seed", "split", "error"])
