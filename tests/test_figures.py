"""Tests of evaluation/figures.py.

The model figures run on a tiny model trained by dlib's own trainer (5 steps
on dlib's dummy_data) and, for the logic that a 5-step model cannot show, on
fake models whose encoder and decoder are known in closed form.
"""
import json
import os

import numpy as np
import pandas as pd
from PIL import Image
import pytest

import sbd_plugin  # pylint: disable=unused-import
from disentanglement_lib.data.ground_truth import dummy_data
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


def _png_size(path):
  assert os.path.getsize(path) > 1000
  with Image.open(path) as image:
    assert image.format == "PNG"
    return image.size  # (width, height)


# --- Synthetic results DataFrame --------------------------------------------


def _results(betas=(1.0,), decoders=("broadcast", "deconv"), seeds=4,
             models=("vae", "factor_vae")):
  rows = []
  for model in models:
    for beta in betas:
      for d, decoder in enumerate(decoders):
        for seed in range(seeds):
          run_id = "%s_%g_%s_%d" % (model, beta, decoder, seed)
          kl = 10.0 * beta + d + seed ** 2  # skewed: median != mean
          recon = 100.0 - kl + 5 * d
          for m, metric in enumerate(("mig", "factor_vae", "dci")):
            rows.append(dict(
                run_id=run_id, dataset="dummy", model=model, decoder=decoder,
                seed=seed, beta=beta, metric=metric,
                value=0.1 * seed ** 2 + 0.05 * d + 0.01 * m + 0.001 * beta,
                reconstruction_loss=recon, kl_loss=kl, elbo=-(recon + kl),
                model_dir="/nonexistent"))
  return pd.DataFrame(rows)


def test_decoder_colours_are_stable():
  colours = figures.decoder_colours(["deconv", "broadcast", "x", "y"])
  assert colours["broadcast"] == "tab:blue"
  assert colours["deconv"] == "tab:orange"
  assert len(set(colours.values())) == 4
  assert figures.decoder_order(["broadcast", "x", "deconv"]) == [
      "deconv", "broadcast", "x"]


def test_metric_distributions(tmp_path):
  df = _results(betas=(1.0, 4.0))
  fig = figures.metric_distributions_figure(df)
  axes = fig.axes
  # 2 models x 2 betas rows, 3 metric columns.
  assert len(axes) == 4 * 3
  assert [ax.get_title() for ax in axes[:3]] == [
      "MIG", "FactorVAE score", "DCI disentanglement"]
  # Row 0 is factor_vae at beta 1: the median bars sit at the medians.
  first = axes[0]
  medians = sorted(seg[0][1] for coll in first.collections
                   if hasattr(coll, "get_segments")
                   for seg in coll.get_segments())
  sel = df[(df.model == "factor_vae") & (df.beta == 1.0) & (df.metric == "mig")]
  expected = sorted(sel.groupby("decoder")["value"].median())
  np.testing.assert_allclose(medians, expected)
  assert [t.get_text() for t in first.get_xticklabels()] == [
      "deconv\n(n=4)", "broadcast\n(n=4)"]
  assert "β=1" in first.get_ylabel()
  path = figures.plot_metric_distributions(df, str(tmp_path / "a" / "d.png"))
  width, height = _png_size(path)
  assert height > width  # four rows of three panels


def test_rate_distortion_beta_sweep_and_single_beta(tmp_path):
  df = _results(betas=(0.5, 1.0, 4.0), seeds=3)
  runs = figures.run_table(df)
  assert len(runs) == 2 * 3 * 2 * 3  # models x betas x decoders x seeds
  assert runs["run_id"].is_unique
  one = runs[runs.run_id == "vae_4_deconv_2"].iloc[0]
  assert one["mig"] == pytest.approx(0.1 * 2 ** 2 + 0.05 + 0.004)
  fig = figures.rate_distortion_figure(df)
  assert len(fig.axes) == 2 * 2  # (factor_vae, vae) x (RD, MIG)
  # The first line of panel (a) joins deconv's per-beta median KLs in order.
  line = fig.axes[0].lines[0]
  # deconv: kl = 10 * beta + 1 + seed**2, median at seed 1; recon = 105 - kl.
  np.testing.assert_allclose(line.get_xdata(), [7.0, 12.0, 42.0])
  np.testing.assert_allclose(line.get_ydata(), [98.0, 93.0, 63.0])
  assert fig.axes[1].get_xlabel() == "MIG"
  figures.plot_rate_distortion(df, str(tmp_path / "rd.png"))

  single = _results(betas=(2.0,), models=("vae",))
  fig = figures.rate_distortion_figure(single)
  assert len(fig.axes) == 2
  assert len(fig.axes[0].lines[0].get_xdata()) == 1  # one median point
  width, height = _png_size(
      figures.plot_rate_distortion(single, str(tmp_path / "rd1.png")))
  assert width > height


def test_rate_distortion_without_mig(tmp_path):
  df = _results(models=("vae",))
  df = df[df.metric != "mig"]
  fig = figures.rate_distortion_figure(df)
  assert any("no MIG values" in t.get_text() for t in fig.axes[1].texts)
  figures.plot_rate_distortion(df, str(tmp_path / "rd.png"))


def test_heldout_generalisation(tmp_path):
  rows = [dict(decoder=d, seed=s, split=split, error=e + s ** 2)
          for d, base in (("broadcast", 10.0), ("deconv", 20.0))
          for split, e in (("seen", base), ("held-out", base + 5))
          for s in range(3)]
  fig = figures.heldout_generalisation_figure(pd.DataFrame(rows))
  ax = fig.axes[0]
  heights = [p.get_height() for p in ax.patches]
  # deconv first (baseline), seen before held-out; medians over seeds 0..2.
  assert heights == [21.0, 26.0, 11.0, 16.0]
  assert [l.get_text() for l in ax.get_legend().get_texts()] == [
      "seen", "held-out", "one seed"]
  _png_size(figures.plot_heldout_generalisation(pd.DataFrame(rows),
                                                str(tmp_path / "h.png")))


# --- Pure helpers -----------------------------------------------------------


def test_latent_order():
  variances = np.array([0.9, 0.05, 1.0, 0.3, 0.8, 0.3])
  np.testing.assert_array_equal(figures.latent_order(variances), [1, 3, 5, 4])
  np.testing.assert_array_equal(
      figures.latent_order(variances, max_latents=2), [1, 3])
  np.testing.assert_array_equal(
      figures.latent_order(variances, max_variance=0.5), [1, 3, 5])
  # All non-coding: keep the most informative one.
  np.testing.assert_array_equal(
      figures.latent_order([0.99, 0.95, 1.01]), [1])


def test_grid_of_lines_layout():
  np.testing.assert_array_equal(figures.evenly_spaced_indices(5, 31),
                                [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(figures.evenly_spaced_indices(32, 6),
                                [0, 6, 12, 19, 25, 31])
  np.testing.assert_array_equal(figures.evenly_spaced_indices(1, 6), [0])
  idx = figures.evenly_spaced_indices(32, 31)
  assert len(np.unique(idx)) == 31 and idx[0] == 0 and idx[-1] == 31

  lines = figures.grid_of_lines(32, 32, num_lines=6, points_per_line=31)
  assert [l.along for l in lines] == ["x"] * 6 + ["y"] * 6
  for line in lines:
    assert line.points.shape == (31, 2)
    fixed, moving = (1, 0) if line.along == "x" else (0, 1)
    assert np.all(line.points[:, fixed] == line.level)
    assert np.all(np.diff(line.points[:, moving]) > 0)
  assert [l.level for l in lines[:6]] == [0, 6, 12, 19, 25, 31]

  # Clipped to the factors' numbers of values.
  small = figures.grid_of_lines(5, 3, num_lines=6, points_per_line=31)
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
  np.testing.assert_allclose(figures.bernoulli_errors(images, logits),
                             expected, rtol=1e-10)
  zeros = figures.bernoulli_errors(np.ones((2, 5)), np.zeros((2, 5)))
  np.testing.assert_allclose(zeros, 5 * np.log(2))


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
  t = figures.traversal_images(model, data, num_values=5, seed=3)
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
  g = figures.latent_geometry(model, data, factor_x=1, factor_y=4,
                              num_lines=3, points_per_line=31, seed=0)
  np.testing.assert_array_equal(g.latents, [7, 2])
  assert [(l.along, len(l.points)) for l in g.lines] == (
      [("x", 5)] * 3 + [("y", 5)] * 3)
  for line, latent in zip(g.lines, g.latent_points):
    np.testing.assert_allclose(latent[:, 0], -2.0 * line.points[:, 0] + 3.0)
    np.testing.assert_allclose(latent[:, 1], 0.5 * line.points[:, 1] - 1.0)
  fig = figures.latent_geometry_figure(g, data)
  assert len(fig.axes) == 2
  assert fig.axes[1].get_xlabel().startswith("z7 ")
  with pytest.raises(ValueError):
    figures.latent_geometry(model, data, 1, 1)


def test_latent_geometry_holds_other_factors():
  seen = []

  class Recording(_FactorData):

    def sample_observations_from_factors(self, factors, random_state):
      seen.append(np.array(factors))
      return super().sample_observations_from_factors(factors, random_state)

  model = _CodeModel(np.linspace(0.1, 1, NUM_LATENT),
                     lambda x: x[:, 0, :10, 0])
  g = figures.latent_geometry(model, Recording(), 0, 3, num_lines=2,
                              points_per_line=4)
  factors = seen[0]
  others = np.delete(factors, [0, 3], axis=1)
  assert np.all(others == np.delete(g.base_factors, [0, 3]))
  assert len(factors) == 2 * 4 + 2 * 4


# --- The tiny trained model --------------------------------------------------


def test_load_model(tiny_model):
  data = dummy_data.DummyData()
  images = data.sample_observations(70, np.random.RandomState(0))
  with figures.load_model(tiny_model) as model:
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
  errors = figures.reconstruction_errors(tiny_model, data, 20, seed=1)
  assert errors.shape == (20,) and np.all(np.isfinite(errors))
  np.testing.assert_allclose(
      errors, figures.reconstruction_errors(tiny_model, data, 20, seed=1))
  # Same scale as the reconstruction loss dlib reports for the model
  # (which decodes a sampled latent): within a few percent.
  with open(os.path.join(tiny_model, "results", "json",
                         "train_results.json")) as f:
    reported = json.load(f)["reconstruction_loss"]
  assert abs(errors.mean() - reported) / reported < 0.05


def test_plot_traversals_on_tiny_model(tiny_model, tmp_path):
  data = dummy_data.DummyData()
  with figures.load_model(tiny_model) as model:
    t = figures.traversal_images(model, data, num_values=7, seed=0)
    assert t.images.shape[1:] == (7, 64, 64, 1)
    assert len(t.mean_variances) == NUM_LATENT
    np.testing.assert_array_equal(t.latents,
                                  figures.latent_order(t.mean_variances))
    path = figures.plot_traversals(model, data, str(tmp_path / "t.png"),
                                   num_values=5, max_latents=1)
  width, height = _png_size(path)
  assert 400 < width < 2000 and 150 < height < 2000
  # Rows grow the figure: 8 latents need a taller image than 1.
  rs = np.random.RandomState(0)
  many = figures.Traversals(rs.uniform(size=(64, 64, 3)),
                            rs.uniform(size=(64, 64, 3)),
                            rs.uniform(size=(8, 5, 64, 64, 3)), np.arange(8),
                            np.linspace(0.1, 0.8, 8), np.linspace(-2, 2, 5))
  fig = figures.traversals_figure(many)
  labels = [l.get_text() for l in fig.axes[-1].get_yticklabels()]
  assert labels[0] == "z0  (σ²=0.10)" and len(labels) == 8
  path8 = str(tmp_path / "t8.png")
  fig.savefig(path8, dpi=figures.DPI)
  assert _png_size(path8)[1] > 2 * height


def test_plot_latent_geometry_on_tiny_model(tiny_model, tmp_path):
  data = dummy_data.DummyData()
  path = figures.plot_latent_geometry(tiny_model, data,
                                      str(tmp_path / "g.png"), factor_x=0,
                                      factor_y=1, num_lines=6,
                                      points_per_line=31)
  width, height = _png_size(path)
  assert width > height > 300
