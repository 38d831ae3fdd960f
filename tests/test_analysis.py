"""Tests of evaluation/analysis.py.

The model code runs on a tiny model trained by dlib's own trainer (5 steps on
dlib's dummy_data) and, for the logic that a 5-step model cannot show, on fake
models whose encoder and decoder are known in closed form.
"""
import json
import os

import gin
import numpy as np
import pandas as pd
import pytest

import sbd_plugin  # pylint: disable=unused-import
from disentanglement_lib.data.ground_truth import dummy_data
from evaluation import analysis
from evaluation import figures
from tests.conftest import run_tool

NUM_LATENT = 10


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
  """A broadcast VAE trained 5 steps on dummy_data by dlib_train."""
  model_dir = str(tmp_path_factory.mktemp("tiny") / "m")
  run_tool(["dlib_train", "--model_dir=" + model_dir,
            "--gin_config", "gin_configs/broadcast_vae.gin",
            "--gin_bindings", "dataset.name='dummy_data'",
            "--gin_bindings", "model.training_steps=5",
            "--gin_bindings", "model.eval_steps=1",
            "--gin_bindings", "model.batch_size=8"], timeout=300)
  return model_dir


# --- Pure helpers -----------------------------------------------------------


def test_latent_order():
  variances = np.array([0.9, 0.05, 1.0, 0.3, 0.8, 0.3])
  np.testing.assert_array_equal(analysis.latent_order(variances),
                                [1, 3, 5, 4])
  np.testing.assert_array_equal(
      analysis.latent_order(variances, max_latents=2), [1, 3])
  np.testing.assert_array_equal(
      analysis.latent_order(variances, max_variance=0.5), [1, 3, 5])
  # All non-coding: keep the most informative one.
  np.testing.assert_array_equal(
      analysis.latent_order([0.99, 0.95, 1.01]), [1])


def test_grid_of_lines_layout():
  np.testing.assert_array_equal(analysis.evenly_spaced_indices(5, 31),
                                [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(analysis.evenly_spaced_indices(32, 6),
                                [0, 6, 12, 19, 25, 31])
  np.testing.assert_array_equal(analysis.evenly_spaced_indices(1, 6), [0])
  idx = analysis.evenly_spaced_indices(32, 31)
  assert len(np.unique(idx)) == 31 and idx[0] == 0 and idx[-1] == 31

  lines = analysis.grid_of_lines(32, 32, num_lines=6, points_per_line=31)
  assert [l.along for l in lines] == ["x"] * 6 + ["y"] * 6
  for line in lines:
    assert line.points.shape == (31, 2)
    fixed, moving = (1, 0) if line.along == "x" else (0, 1)
    assert np.all(line.points[:, fixed] == line.level)
    assert np.all(np.diff(line.points[:, moving]) > 0)
  assert [l.level for l in lines[:6]] == [0, 6, 12, 19, 25, 31]

  # Clipped to the factors' numbers of values.
  small = analysis.grid_of_lines(5, 3, num_lines=6, points_per_line=31)
  assert [(l.along, len(l.points)) for l in small] == (
      [("x", 5)] * 3 + [("y", 3)] * 5)


def test_bernoulli_errors_match_tensorflow():
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(0)
  images = rs.uniform(size=(4, 8, 8, 3))
  logits = rs.normal(0, 30, size=(4, 8, 8, 3))  # large: tests stability
  # The same ops as dlib's bernoulli_loss (graph mode: dlib disables eager).
  with tf.Graph().as_default(), tf.Session() as sess:
    expected = sess.run(tf.reduce_sum(tf.reshape(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=logits),
        [4, -1]), axis=1))
  np.testing.assert_allclose(analysis.bernoulli_errors(images, logits),
                             expected, rtol=1e-10)
  zeros = analysis.bernoulli_errors(np.ones((2, 5)), np.zeros((2, 5)))
  np.testing.assert_allclose(zeros, 5 * np.log(2))


def test_load_dataset_leaves_gin_config_cleared():
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top,unused-import
  gin.parse_config(["dataset.name = 'something_else'"])
  data = analysis.load_dataset("dummy_data")
  assert isinstance(data, dummy_data.DummyData)
  assert not gin.config_str().strip()  # documented: the config is cleared


# --- Fake models: the traversal and geometry logic in closed form -----------


class _CodeModel(object):
  """Encoder: fixed variances, mean = f(image); decoder: shows the code."""
  activation = "logits"

  def __init__(self, variances, encode_mean):
    self.variances = np.asarray(variances, float)
    self.encode_mean = encode_mean

  def encode(self, images):
    mean = self.encode_mean(images)
    return mean, np.log(np.tile(self.variances, (len(images), 1)))

  def decode(self, latents):
    return np.asarray(latents)[:, None, :, None]  # [N, 1, K, 1]

  decode_logits = decode


def test_traversal_images_sweep_one_latent_at_a_time():
  variances = np.array([1.0, 0.1, 0.95, 0.02, 0.5])
  model = _CodeModel(variances, lambda x: x.reshape(len(x), -1)[:, :5] + 3.0)
  data = dummy_data.DummyData()
  t = analysis.traversal_images(model, data, num_values=5, seed=3)
  np.testing.assert_array_equal(t.latents, [3, 1, 4])
  np.testing.assert_allclose(t.values, [-2, -1, 0, 1, 2])
  codes = t.images[:, :, 0, :, 0]  # [rows, values, latents]
  seed_mean = t.seed_image.reshape(-1)[:5] + 3.0
  for row, latent in enumerate(t.latents):
    np.testing.assert_allclose(codes[row, :, latent], t.values)
    others = np.delete(codes[row], latent, axis=1)
    np.testing.assert_allclose(others, np.tile(np.delete(seed_mean, latent),
                                               (5, 1)))
  # The seed image is the first of the sampled batch for this seed.
  batch = data.sample_observations(64, np.random.RandomState(3))
  np.testing.assert_array_equal(t.seed_image, batch[0])


class _FactorData(dummy_data.DummyData):
  """dummy_data whose images carry their factors in the first pixels."""

  factor_names = ["f%d" % i for i in range(10)]

  def sample_observations_from_factors(self, factors, random_state):
    images = np.zeros((len(factors), 64, 64, 1))
    images[:, 0, :self.num_factors, 0] = factors
    return images


def test_latent_geometry_picks_and_orients_the_coding_latents():
  # Latent 2 encodes factor 4 and latent 7 encodes factor 1 (affinely);
  # asked for (factor_x=1, factor_y=4), the x axis must show latent 7.
  variances = np.full(NUM_LATENT, 1.0)
  variances[[2, 7]] = [0.01, 0.02]

  def encode_mean(images):
    factors = images[:, 0, :10, 0]
    mean = np.zeros((len(images), NUM_LATENT))
    mean[:, 2] = 0.5 * factors[:, 4] - 1.0
    mean[:, 7] = -2.0 * factors[:, 1] + 3.0
    return mean

  model = _CodeModel(variances, encode_mean)
  data = _FactorData()
  g = analysis.latent_geometry(model, data, factor_x=1, factor_y=4,
                               num_lines=3, points_per_line=31, seed=0)
  np.testing.assert_array_equal(g.latents, [7, 2])
  assert [(l.along, len(l.points)) for l in g.lines] == (
      [("x", 5)] * 3 + [("y", 5)] * 3)
  for line, latent in zip(g.lines, g.latent_points):
    np.testing.assert_allclose(latent[:, 0], -2.0 * line.points[:, 0] + 3.0)
    np.testing.assert_allclose(latent[:, 1], 0.5 * line.points[:, 1] - 1.0)
  assert g.factor_names == data.factor_names  # for the figure's labels
  with pytest.raises(ValueError):
    analysis.latent_geometry(model, data, 1, 1)


def test_latent_geometry_holds_other_factors():
  seen = []

  class Recording(_FactorData):

    def sample_observations_from_factors(self, factors, random_state):
      seen.append(np.array(factors))
      return super().sample_observations_from_factors(factors, random_state)

  model = _CodeModel(np.linspace(0.1, 1, NUM_LATENT),
                     lambda x: x[:, 0, :10, 0])
  g = analysis.latent_geometry(model, Recording(), 0, 3, num_lines=2,
                               points_per_line=4)
  factors = seen[0]
  others = np.delete(factors, [0, 3], axis=1)
  assert np.all(others == np.delete(g.base_factors, [0, 3]))
  assert len(factors) == 2 * 4 + 2 * 4


# --- The tiny trained model --------------------------------------------------


def test_load_model(tiny_model):
  data = dummy_data.DummyData()
  images = data.sample_observations(70, np.random.RandomState(0))
  with analysis.load_model(tiny_model) as model:
    assert model.num_latent == NUM_LATENT
    assert model.observation_shape == [64, 64, 1]
    assert model.activation == "logits"
    mean, logvar = model.encode(images)  # 70 > batch size 64: two batches
    assert mean.shape == logvar.shape == (70, NUM_LATENT)
    again, _ = model.encode(images[:3])
    np.testing.assert_allclose(again, mean[:3], rtol=1e-5, atol=1e-6)
    decoded = model.decode(mean)
    assert decoded.shape == (70, 64, 64, 1)
    assert decoded.min() >= 0 and decoded.max() <= 1


def test_reconstruction_errors(tiny_model):
  data = dummy_data.DummyData()
  errors = analysis.reconstruction_errors(tiny_model, data, 20, seed=1)
  assert errors.shape == (20,) and np.all(np.isfinite(errors))
  np.testing.assert_allclose(
      errors, analysis.reconstruction_errors(tiny_model, data, 20, seed=1))
  # Same scale as the reconstruction loss dlib reports for the model
  # (which decodes a sampled latent): within a few percent.
  with open(os.path.join(tiny_model, "results", "json",
                         "train_results.json")) as f:
    reported = json.load(f)["reconstruction_loss"]
  assert abs(errors.mean() - reported) / reported < 0.05


def test_heldout_errors_per_run_and_split(tiny_model):
  frame = pd.DataFrame([
      dict(run_id=run_id, dataset=dataset, decoder="broadcast", seed=seed,
           metric=metric, model_dir=tiny_model)
      for run_id, dataset, seed in (("a", "dummy_data", 0),
                                    ("b", "dummy_data", 1),
                                    ("c", "other_data", 0))
      for metric in ("mig", "dci")])
  errors = analysis.heldout_errors(frame, "dummy_data", "dummy_data",
                                   num_samples=8)
  # One row per run of the seen dataset and split; identical data here.
  assert list(errors["seed"]) == [0, 0, 1, 1]
  assert list(errors["split"]) == list(analysis.SPLITS) * 2
  np.testing.assert_allclose(errors["error"][::2], errors["error"][1::2])


def test_traversals_of_tiny_model(tiny_model, tmp_path):
  data = dummy_data.DummyData()
  with analysis.load_model(tiny_model) as model:
    t = analysis.traversal_images(model, data, num_values=7, seed=0)
    assert t.images.shape[1:] == (7, 64, 64, 1)
    assert len(t.mean_variances) == NUM_LATENT
    np.testing.assert_array_equal(t.latents,
                                  analysis.latent_order(t.mean_variances))
    one_row = analysis.traversal_images(model, data, num_values=5,
                                        max_latents=1)
  path = figures.plot_traversals(one_row, str(tmp_path / "t.png"))
  assert os.path.getsize(path) > 1000


def test_latent_geometry_of_tiny_model(tiny_model, tmp_path):
  data = dummy_data.DummyData()
  g = analysis.latent_geometry(tiny_model, data, factor_x=0, factor_y=1,
                               num_lines=6, points_per_line=31)
  # dummy_data's factors have 5 values: 5 lines per direction.
  assert len(g.lines) == len(g.latent_points) == 10
  assert all(p.shape == (len(l.points), 2)
             for l, p in zip(g.lines, g.latent_points))
  path = figures.plot_latent_geometry(g, str(tmp_path / "g.png"))
  assert os.path.getsize(path) > 1000
