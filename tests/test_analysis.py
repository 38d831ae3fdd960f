"""Tests of evaluation/analysis.py, latent_traversals.py and latent_geometry.py.

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
from evaluation import latent_figures
from evaluation import latent_geometry
from evaluation import latent_traversals

NUM_LATENT = 10


@pytest.fixture
def tiny_model(dummy_model):
  """A broadcast VAE trained 5 steps on dummy_data by dlib_train (conftest)."""
  return dummy_model


# --- Pure helpers -----------------------------------------------------------


def test_latent_order():
  variances = np.array([0.9, 0.05, 1.0, 0.3, 0.8, 0.3])
  np.testing.assert_array_equal(latent_traversals.latent_order(variances),
                                [1, 3, 5, 4])
  np.testing.assert_array_equal(
      latent_traversals.latent_order(variances, max_latents=2), [1, 3])
  np.testing.assert_array_equal(
      latent_traversals.latent_order(variances, max_variance=0.5), [1, 3, 5])
  # All non-coding: keep the most informative one.
  np.testing.assert_array_equal(
      latent_traversals.latent_order([0.99, 0.95, 1.01]), [1])


def test_grid_of_lines_layout():
  np.testing.assert_array_equal(latent_geometry.evenly_spaced_indices(5, 31),
                                [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(latent_geometry.evenly_spaced_indices(32, 6),
                                [0, 6, 12, 19, 25, 31])
  np.testing.assert_array_equal(latent_geometry.evenly_spaced_indices(1, 6),
                                [0])
  idx = latent_geometry.evenly_spaced_indices(32, 31)
  assert len(np.unique(idx)) == 31 and idx[0] == 0 and idx[-1] == 31

  lines = latent_geometry.grid_of_lines(32, 32, num_lines=6, points_per_line=31)
  assert [l.along for l in lines] == ["x"] * 6 + ["y"] * 6
  for line in lines:
    assert line.points.shape == (31, 2)
    fixed, moving = (1, 0) if line.along == "x" else (0, 1)
    assert np.all(line.points[:, fixed] == line.level)
    assert np.all(np.diff(line.points[:, moving]) > 0)
  assert [l.level for l in lines[:6]] == [0, 6, 12, 19, 25, 31]

  # Clipped to the factors' numbers of values.
  small = latent_geometry.grid_of_lines(5, 3, num_lines=6, points_per_line=31)
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
  t = latent_traversals.traversal_images(model, data, num_values=5, seed=3)
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


def test_traversal_comparison_uses_one_input_for_every_model():
  data = dummy_data.DummyData()
  first = _CodeModel([1.0, 0.1, 0.95, 0.02, 0.5],
                     lambda x: x.reshape(len(x), -1)[:, :5])
  second = _CodeModel([0.3, 1.0, 1.0, 1.0, 0.05],
                      lambda x: -x.reshape(len(x), -1)[:, 5:10])
  both = latent_traversals.traversal_comparison({"deconv": first,
                                                 "broadcast": second}, data,
                                                num_values=5, seed=3)
  assert list(both) == ["deconv", "broadcast"]
  batch = data.sample_observations(64, np.random.RandomState(3))
  for t in both.values():
    np.testing.assert_array_equal(t.seed_image, batch[0])
  np.testing.assert_array_equal(both["deconv"].latents, [3, 1, 4])
  np.testing.assert_array_equal(both["broadcast"].latents, [4, 0])
  # Each model's images are its own decoder's, from its own code of the
  # input: the same as traversal_images gives for that model alone.
  for label, model in (("deconv", first), ("broadcast", second)):
    alone = latent_traversals.traversal_images(model, data, num_values=5,
                                               seed=3)
    np.testing.assert_array_equal(both[label].images, alone.images)
    np.testing.assert_array_equal(both[label].reconstruction,
                                  alone.reconstruction)
  seed_code = -batch[0].reshape(-1)[5:10]
  np.testing.assert_allclose(both["broadcast"].reconstruction[0, :, 0],
                             seed_code)


class _FactorData(dummy_data.DummyData):
  """dummy_data whose images carry their factors in the first pixels."""

  factor_names = ["f%d" % i for i in range(10)]

  def sample_observations_from_factors(self, factors, random_state):
    images = np.zeros((len(factors), 64, 64, 1))
    images[:, 0, :self.num_factors, 0] = factors
    return images


def test_factor_r2_and_choose_latent_pair():
  rs = np.random.RandomState(0)
  factor = np.repeat(np.arange(8), 4).astype(float)
  means = np.stack([2.0 * factor + 1.0,  # affine: R^2 = 1
                    np.tanh(factor / 4.0),  # monotone: R^2 close to 1
                    rs.normal(size=len(factor)),  # unrelated: R^2 near 0
                    np.full(len(factor), 3.0)], axis=1)  # constant: 0
  r2 = latent_geometry.factor_r2(means, factor)
  assert r2[0] == pytest.approx(1.0)
  assert 0.9 < r2[1] < 1.0 and r2[2] < 0.2 and r2[3] == 0.0
  np.testing.assert_allclose(
      r2[:3], [np.corrcoef(m, factor)[0, 1] ** 2 for m in means.T[:3]])
  assert latent_geometry.factor_r2(means, np.zeros(len(factor))).max() == 0.0
  # With posterior variances: the R^2 of a sample mean + noise. A mean that
  # moves with the factor by much less than the noise scores about 0.
  spread = means.var(axis=0)
  noisy = latent_geometry.factor_r2(means, factor, [0.0, 1.0, 1.0, 1.0])
  assert noisy[0] == pytest.approx(1.0)
  np.testing.assert_allclose(noisy[1:3], r2[1:3] * spread[1:3] /
                             (spread[1:3] + 1.0))
  tiny = latent_geometry.factor_r2(1e-3 * means[:, :1], factor, [0.5])
  assert tiny[0] < 1e-3

  # Greedy: the best latent for x first, then the best other one for y,
  # even where that one is also the best for x.
  r2_x = np.array([0.1, 0.9, 0.8, 0.0])
  r2_y = np.array([0.2, 0.95, 0.6, 0.5])
  latents, scores = latent_geometry.choose_latent_pair(r2_x, r2_y, [0, 1, 2, 3])
  np.testing.assert_array_equal(latents, [1, 2])
  np.testing.assert_allclose(scores, [0.9, 0.6])
  # Only candidates count; ties go to the earlier candidate.
  latents, _ = latent_geometry.choose_latent_pair(r2_x, r2_y, [3, 0, 2])
  np.testing.assert_array_equal(latents, [2, 3])
  latents, _ = latent_geometry.choose_latent_pair(np.zeros(4), np.zeros(4),
                                                  [2, 0])
  np.testing.assert_array_equal(latents, [2, 0])
  latents, scores = latent_geometry.choose_latent_pair(r2_x, r2_y, [2])
  np.testing.assert_array_equal(latents, [2])


def test_region_box_of_the_holdout_quadrant():
  from sbd_plugin.datasets import holdout  # pylint: disable=g-import-not-at-top
  region = holdout.HoldoutRegion((0.5, 1.0), (0.5, 1.0), None)
  base = np.array([1, 2, 5, 0, 0, 1, 1, 1])
  # posX (3) and posY (4) index 16..31 are >= 0.5 (linspace(0, 1, 32)).
  assert latent_geometry.region_box(region, base, 3, 4, 32, 32) == (
      16, 31, 16, 31)
  assert latent_geometry.region_box(region, base, 4, 3, 32, 32) == (
      16, 31, 16, 31)
  # In the (scale, posX) plane at posY 0 the region is not met.
  assert latent_geometry.region_box(region, base, 1, 3, 6, 32) is None
  # Only hearts held out: the plane of a square misses it.
  hearts = holdout.HoldoutRegion((0.5, 1.0), (0.0, 0.25), ["heart"])
  assert latent_geometry.region_box(hearts, base, 3, 4, 32, 32) is None
  base[0] = 2
  assert latent_geometry.region_box(hearts, base, 3, 4, 32, 32) == (
      16, 31, 0, 7)


class _Box(object):
  """A held-out region: factor 1 >= 3 and factor 4 <= 1."""

  def contains(self, factors):
    factors = np.asarray(factors)
    return (factors[:, 1] >= 3) & (factors[:, 4] <= 1)


def test_latent_geometry_picks_the_latents_that_track_the_factors():
  # The latents of lowest variance (0 and 1) code factors the grid holds
  # fixed (latent 1 leaks a little of factor 4, much less than its noise),
  # and latent 9 follows factor 1 exactly but is non-coding (prior variance,
  # tiny mean). The tracking latents 6 (factor 4, affine) and 3 (factor 1,
  # saturating) have larger variances. Asked for (factor_x=1, factor_y=4),
  # the x axis must show latent 3 and the y axis latent 6.
  variances = np.full(NUM_LATENT, 1.0)
  variances[[0, 1, 3, 6]] = [0.01, 0.02, 0.1, 0.2]

  def encode_mean(images):
    factors = images[:, 0, :10, 0]
    mean = np.zeros((len(images), NUM_LATENT))
    mean[:, 0] = factors[:, 0]
    mean[:, 1] = 0.3 * factors[:, 2] + 0.01 * factors[:, 4]
    mean[:, 3] = np.tanh(factors[:, 1] - 2.0)
    mean[:, 6] = 0.5 * factors[:, 4] - 1.0
    mean[:, 9] = 1e-3 * factors[:, 1]
    return mean

  model = _CodeModel(variances, encode_mean)
  data = _FactorData()
  g = latent_geometry.latent_geometry(model, data, factor_x=1, factor_y=4,
                                      num_lines=3, points_per_line=31, seed=0,
                                      region=_Box())
  np.testing.assert_array_equal(g.latents, [3, 6])
  assert g.r2.shape == (NUM_LATENT, 2)
  np.testing.assert_allclose(g.scores, [g.r2[3, 0], g.r2[6, 1]])
  assert min(g.scores) > 0.5
  # The means of latents 1 and 9 are exact lines in a factor, but their
  # noise dwarfs them; latent 0 is constant on the grid.
  assert g.r2[1, 1] < 0.05 and g.r2[9, 0] < 1e-4 and g.r2[0].max() == 0.0
  # Each tracking latent scores about 0 for the other factor.
  assert g.r2[3, 1] < 0.05 and g.r2[6, 0] < 0.05
  assert [(l.along, len(l.points)) for l in g.lines] == (
      [("x", 5)] * 3 + [("y", 5)] * 3)
  for line, latent in zip(g.lines, g.latent_points):
    np.testing.assert_allclose(latent[:, 0],
                               np.tanh(line.points[:, 0] - 2.0))
    np.testing.assert_allclose(latent[:, 1], 0.5 * line.points[:, 1] - 1.0)
  assert g.factor_names == data.factor_names  # for the figure's labels
  # The held-out box in the plane and the grid points inside it.
  assert g.region_box == (3, 4, 0, 1)
  for line, inside in zip(g.lines, g.in_region):
    np.testing.assert_array_equal(
        inside, (line.points[:, 0] >= 3) & (line.points[:, 1] <= 1))
  assert sum(int(i.sum()) for i in g.in_region) > 0
  with pytest.raises(ValueError):
    latent_geometry.latent_geometry(model, data, 1, 1)


def test_latent_geometry_without_region_or_coding_latents():
  # No latent codes (variances near the prior's): the best tracking win.
  def encode_mean(images):
    factors = images[:, 0, :10, 0]
    mean = np.zeros((len(images), NUM_LATENT))
    mean[:, 5], mean[:, 2] = factors[:, 0], -factors[:, 3]
    return mean

  model = _CodeModel(np.full(NUM_LATENT, 0.99), encode_mean)
  g = latent_geometry.latent_geometry(model, _FactorData(), 0, 3,
                                      num_lines=2, points_per_line=5)
  np.testing.assert_array_equal(g.latents, [5, 2])
  assert g.region_box is None and g.in_region is None


def test_latent_geometry_holds_other_factors():
  seen = []

  class Recording(_FactorData):

    def sample_observations_from_factors(self, factors, random_state):
      seen.append(np.array(factors))
      return super().sample_observations_from_factors(factors, random_state)

  model = _CodeModel(np.linspace(0.1, 1, NUM_LATENT),
                     lambda x: x[:, 0, :10, 0])
  g = latent_geometry.latent_geometry(model, Recording(), 0, 3, num_lines=2,
                                      points_per_line=4)
  factors = np.concatenate(seen)  # rendered one at a time (render_fixed)
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
      dict(run_id=run_id, dataset=dataset, model=model, beta=beta,
           decoder="broadcast", seed=seed, metric=metric,
           model_dir=tiny_model)
      for run_id, dataset, model, beta, seed in (
          ("a", "dummy_data", "vae", 1.0, 0),
          ("b", "dummy_data", "beta_vae", 4.0, 1),
          ("c", "other_data", "vae", 1.0, 0),
          ("d", "dummy_data", "beta_vae", np.nan, 0))
      for metric in ("mig", "dci")])
  errors = analysis.heldout_errors(frame, "dummy_data", "dummy_data",
                                   num_samples=8)
  # One row per run of the seen dataset and split, keeping its model and
  # beta; identical data here.
  assert list(errors.columns) == ["run_id", "model", "beta", "decoder",
                                  "seed", "split", "error"]
  assert list(errors["run_id"]) == ["a", "a", "b", "b", "d", "d"]
  assert list(errors["model"]) == ["vae"] * 2 + ["beta_vae"] * 4
  np.testing.assert_array_equal(errors["beta"],
                                [1.0, 1.0, 4.0, 4.0, np.nan, np.nan])
  assert list(errors["seed"]) == [0, 0, 1, 1, 0, 0]
  assert list(errors["split"]) == list(analysis.SPLITS) * 3
  np.testing.assert_allclose(errors["error"][::2], errors["error"][1::2])


def test_traversals_of_tiny_model(tiny_model, tmp_path):
  data = dummy_data.DummyData()
  with analysis.load_model(tiny_model) as model:
    t = latent_traversals.traversal_images(model, data, num_values=7, seed=0)
    assert t.images.shape[1:] == (7, 64, 64, 1)
    assert len(t.mean_variances) == NUM_LATENT
    np.testing.assert_array_equal(
        t.latents, latent_traversals.latent_order(t.mean_variances))
    one_row = latent_traversals.traversal_images(model, data, num_values=5,
                                                 max_latents=1)
  path = latent_figures.plot_traversals(one_row, str(tmp_path / "t.png"))
  assert os.path.getsize(path) > 1000


def test_latent_geometry_of_tiny_model(tiny_model, tmp_path):
  data = dummy_data.DummyData()
  g = latent_geometry.latent_geometry(tiny_model, data, factor_x=0,
                                      factor_y=1, num_lines=6,
                                      points_per_line=31)
  # dummy_data's factors have 5 values: 5 lines per direction.
  assert len(g.lines) == len(g.latent_points) == 10
  assert all(p.shape == (len(l.points), 2)
             for l, p in zip(g.lines, g.latent_points))
  path = latent_figures.plot_latent_geometry(g, str(tmp_path / "g.png"))
  assert os.path.getsize(path) > 1000
