"""Trained models and their reconstructions: load, encode, decode, score.

Loads a trained dlib model's TF-Hub module (`<model_dir>/tfhub`) as a
HubModel, builds datasets the way dlib's steps do (`load_dataset`), and
computes per-image reconstruction errors (`reconstruction_errors`, from the
pure `bernoulli_errors`) and the seen vs held-out errors of a study's runs
(`heldout_errors`). What the report draws from a model's latents is computed
in evaluation/latent_traversals.py and evaluation/latent_geometry.py, which
open models through `Opened`; drawing is evaluation/figures.py's and
evaluation/latent_figures.py's job.

Functions that need a model take a HubModel (or any object with the same
encode / decode / decode_logits / activation interface) or a model folder,
which is then loaded and closed around the call. TensorFlow is imported only
when a model is loaded.
"""
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


class Opened(object):
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
  with Opened(model) as m:
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
