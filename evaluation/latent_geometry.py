"""Latent-space geometry: how a model encodes a grid of lines in two factors.

`latent_geometry` renders the paper's grid of lines (`grid_of_lines`) in two
factors of a dataset, encodes it, and picks the two latents that track the
factors (`factor_r2`, `choose_latent_pair`), with where a held-out region
meets the grid (`region_box`). The arithmetic is in pure functions of arrays
that tests call directly. Models are opened with evaluation/analysis.py; the
figure is in evaluation/latent_figures.py.
"""
import collections

import numpy as np

from evaluation import analysis


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


# How `render_fixed` holds the factors it is not given fixed, for captions.
BIN_CENTRE = "colour at its bin's centre"
SAME_DRAWS = ("every image rendered from the same random draws (seed %d), so "
              "any nuisance the dataset draws per image is the same in all")


def render_fixed(ground_truth_data, factors, seed):
  """Renders factor rows so that images differ only where the factors do.

  A dataset with `fixed_observations_from_factors` (colored sprites: colour
  at the bin centre, where sampling draws it anywhere in the bin) renders
  with it. Any other renders each row alone from a fresh RandomState(seed),
  so a nuisance drawn per image (dlib's color_dsprites colour, the noise of
  noisy_dsprites) takes the same draws in every image; datasets whose images
  are a function of the factors are unchanged by this.

  Args:
    ground_truth_data: dlib GroundTruthData.
    factors: Int array [N, num_factors], factor indices.
    seed: Seed of the random state of the datasets without a fixed path.

  Returns:
    (images [N, ...], how): how the unvaried part was fixed, BIN_CENTRE or
    SAME_DRAWS with the seed, for the figure's caption.
  """
  fixed = getattr(ground_truth_data, "fixed_observations_from_factors", None)
  if fixed is not None:
    return np.asarray(fixed(factors)), BIN_CENTRE
  images = [ground_truth_data.sample_observations_from_factors(
      factors[i:i + 1], np.random.RandomState(seed))[0]
            for i in range(len(factors))]
  return np.stack(images), SAME_DRAWS % seed


# factor_names: the dataset's factor names (None if it has none), so that a
# figure can label its axes without the dataset. scores: the R^2 of the
# chosen latents with factor_x and factor_y; r2: [num_latents, 2], every
# latent's R^2 with factor_x and with factor_y (see `factor_r2`). region_box
# and in_region: where the grid meets the held-out region, None without one
# (see `latent_geometry`). rendering: how the other factors' nuisances were
# held fixed (see `render_fixed`).
Geometry = collections.namedtuple(
    "Geometry", ["lines", "latent_points", "latents", "mean_variances",
                 "factor_x", "factor_y", "base_factors", "factor_names",
                 "scores", "r2", "region_box", "in_region", "rendering"],
    defaults=(None,) * 6)


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
  Everything else in the images is held fixed too (`render_fixed`: colored
  sprites at their colour bin's centre), so the images differ only in the two
  factors. A disentangled model keeps the grid up to an affine map.

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
      random draws of datasets without a fixed rendering, see
      `render_fixed`).
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
    misses the region) and in_region (list of bool [P] per line), else None;
    rendering (how the rest was held fixed, see `render_fixed`).

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
  images, rendering = render_fixed(ground_truth_data, factors, seed)
  with analysis.Opened(model) as m:
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
                  r2, box, in_region, rendering)
