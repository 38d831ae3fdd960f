"""Latent traversals: a seed image's latents swept one at a time and decoded.

`traversal_images` sweeps each informative latent of one model around a seed
image; `traversal_comparison` does so for several models from the same
image. Which latents are shown and in what order is the pure
`latent_order`, of the latents' average posterior variances. Models are
opened with evaluation/analysis.py; the figures are in
evaluation/latent_figures.py.
"""
import collections

import numpy as np

from evaluation import analysis


# --- Latent traversals ------------------------------------------------------


# A latent whose average posterior variance is above this is non-coding:
# the encoder leaves it near the prior's variance of 1 for every input.
NON_CODING_VARIANCE = 0.8


def latent_order(mean_variances, max_variance=NON_CODING_VARIANCE,
                 max_latents=None):
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


def non_coding(mean_variances, shown, max_variance=NON_CODING_VARIANCE):
  """The latents the non-coding rule of `latent_order` left out.

  Args:
    mean_variances: 1-D array, average posterior variance of each latent.
    shown: The latent indices shown (`latent_order`'s result).
    max_variance: The rule's threshold.

  Returns:
    Sorted 1-D int array of the latents not shown whose average variance is
    above max_variance (those cut by max_latents are not counted).
  """
  mean_variances = np.asarray(mean_variances, dtype=float)
  above = np.flatnonzero(mean_variances > max_variance)
  return np.setdiff1d(above, np.asarray(shown, dtype=int))


# dropped: the latents left out as non-coding (see `non_coding`), sorted;
# max_variance: the threshold that dropped them.
Traversals = collections.namedtuple(
    "Traversals", ["seed_image", "reconstruction", "images", "latents",
                   "mean_variances", "values", "dropped", "max_variance"],
    defaults=(None, None))


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
                    mean_variances, values,
                    non_coding(mean_variances, latents), NON_CODING_VARIANCE)


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
    latents (the L shown indices, ordered), mean_variances (all latents),
    values (the num_values latent values swept), dropped (the latents left
    out as non-coding) and max_variance (the threshold of that rule).
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
    with analysis.Opened(model) as m:
      traversals[label] = _traverse(m, batch, num_values, max_latents)
  return traversals
