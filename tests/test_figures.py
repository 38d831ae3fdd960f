"""Tests of evaluation/figures.py: figures drawn from given numbers.

The DataFrame figures are checked on synthetic study results, the model
figures on synthetic Traversals / Geometry tuples (their computation from a
model is tested in tests/test_analysis.py).
"""
import os

import numpy as np
import pandas as pd
from PIL import Image
import pytest

from evaluation import analysis
from evaluation import figures
from evaluation import study as study_lib


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


def _medians(ax):
  """y of each median bar (the visible lines of the seaborn box plot)."""
  return sorted(line.get_ydata()[0] for line in ax.lines
                if line.get_visible())


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
  sel = df[(df.model == "factor_vae") & (df.beta == 1.0) & (df.metric == "mig")]
  expected = sorted(sel.groupby("decoder")["value"].median())
  np.testing.assert_allclose(_medians(first), expected)
  # One point per seed, at the seeds' values.
  points = first.collections[0].get_offsets()
  np.testing.assert_allclose(sorted(points[:, 1]), sorted(sel["value"]))
  assert [t.get_text() for t in first.get_xticklabels()] == [
      "deconv\n(n=4)", "broadcast\n(n=4)"]
  assert "β=1" in first.get_ylabel()
  assert axes[1].get_ylabel() == "" and first.get_xlabel() == ""
  path = figures.plot_metric_distributions(df, str(tmp_path / "a" / "d.png"))
  width, height = _png_size(path)
  assert height > width  # four rows of three panels


def test_metric_distributions_take_order_baseline_and_missing_values():
  df = _results(models=("vae",), betas=(1.0, 2.0, 3.0))
  df.loc[df.beta == 3.0, "beta"] = np.nan
  # broadcast has no dci values: its column still shows, with n=0.
  df = df[~((df.decoder == "broadcast") & (df.metric == "dci"))]
  fig = figures.metric_distributions_figure(
      df, baseline="broadcast", metrics=("dci", "mig"))
  # Listed metrics first in the given order, the others alphabetically.
  assert [ax.get_title() for ax in fig.axes[:3]] == [
      "DCI disentanglement", "MIG", "FactorVAE score"]
  assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [
      "broadcast\n(n=0)", "deconv\n(n=4)"]
  # Rows: beta 1, beta 2, then the runs whose beta is unknown.
  assert "β=unknown" in fig.axes[6].get_ylabel()
  assert study_lib.METRICS[0] == "mig"  # the default order
  assert figures.metric_distributions_figure(df).axes[0].get_title() == "MIG"


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


def _errors():
  return pd.DataFrame([dict(decoder=d, seed=s, split=split, error=e + s ** 2)
                       for d, base in (("broadcast", 10.0), ("deconv", 20.0))
                       for split, e in (("seen", base), ("held-out", base + 5))
                       for s in range(3)])


def test_heldout_generalisation(tmp_path):
  fig = figures.heldout_generalisation_figure(_errors())
  ax = fig.axes[0]
  bars = sorted(ax.patches, key=lambda p: p.get_x())
  # deconv first (baseline), seen before held-out; medians over seeds 0..2.
  assert [p.get_height() for p in bars] == [21.0, 26.0, 11.0, 16.0]
  # Each bar 0.9 of its slot in the 0.8 wide group, centred on the slot.
  np.testing.assert_allclose([p.get_x() + p.get_width() / 2 for p in bars],
                             [-0.2, 0.2, 0.8, 1.2])
  np.testing.assert_allclose([p.get_width() for p in bars], [0.36] * 4)
  # One point per run and split, jittered within its bar.
  points = ax.collections[0].get_offsets()
  assert len(points) == 12
  for bar in bars:
    inside = points[np.abs(points[:, 0] - bar.get_x() - 0.18) < 0.18]
    assert np.median(inside[:, 1]) == bar.get_height()
  assert [l.get_text() for l in ax.get_legend().get_texts()] == [
      "seen", "held-out", "one seed"]
  assert [t.get_text() for t in ax.get_xticklabels()] == [
      "deconv", "broadcast"]
  _png_size(figures.plot_heldout_generalisation(_errors(),
                                                str(tmp_path / "h.png")))


def test_heldout_generalisation_baseline_and_missing_errors():
  errors = _errors()
  errors.loc[(errors.decoder == "broadcast") & (errors.split == "seen"),
             "error"] = np.nan
  fig = figures.heldout_generalisation_figure(errors, baseline="broadcast")
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == [
      "broadcast", "deconv"]
  assert sorted(p.get_height() for p in ax.patches) == [16.0, 21.0, 26.0]
  assert [l.get_text() for l in ax.get_legend().get_texts()] == [
      "seen", "held-out", "one seed"]


# --- Model figures from synthetic tuples ---------------------------------------


def _traversals(rows, channels=3, seed=0):
  rs = np.random.RandomState(seed)
  return analysis.Traversals(
      rs.uniform(size=(64, 64, channels)), rs.uniform(size=(64, 64, channels)),
      rs.uniform(size=(rows, 5, 64, 64, channels)), np.arange(rows)[::-1],
      np.linspace(0.1, 0.8, rows), np.linspace(-2, 2, 5))


def test_traversals_figure(tmp_path):
  one = _traversals(1, channels=1)
  fig = figures.traversals_figure(one)
  grid = fig.axes[-1].images[0].get_array()
  # 1 row x 5 columns of 64 px images, 2 px of white padding between.
  assert grid.shape == (64, 5 * 64 + 4 * 2)
  np.testing.assert_allclose(grid[:, 64:66], 1.0)
  np.testing.assert_allclose(grid[:, 66:130], one.images[0, 1, ..., 0])
  path = figures.plot_traversals(one, str(tmp_path / "t.png"))
  width, height = _png_size(path)
  assert 400 < width < 2000 and 150 < height < 2000
  # Rows grow the figure: 8 latents need a taller image than 1.
  many = figures.traversals_figure(_traversals(8))
  labels = [l.get_text() for l in many.axes[-1].get_yticklabels()]
  assert labels[0] == "z7  (σ²=0.80)" and len(labels) == 8
  assert [l.get_text() for l in many.axes[-1].get_xticklabels()] == [
      "-2.0", "-1.0", "+0.0", "+1.0", "+2.0"]
  path8 = str(tmp_path / "t8.png")
  many.savefig(path8, dpi=figures.DPI)
  assert _png_size(path8)[1] > 2 * height


def test_latent_geometry_figure(tmp_path):
  lines = analysis.grid_of_lines(8, 5, num_lines=3, points_per_line=4)
  latent_points = [line.points * 0.5 for line in lines]
  variances = np.linspace(0.1, 1.0, 6)
  geometry = analysis.Geometry(lines, latent_points, np.array([4, 1]),
                               variances, 2, 0, np.zeros(3, int),
                               ["shape", "scale", "posX"])
  fig = figures.latent_geometry_figure(geometry)
  ax_true, ax_latent = fig.axes
  assert ax_true.get_xlabel() == "factor 2 (posX) index"
  assert ax_true.get_ylabel() == "factor 0 (shape) index"
  assert ax_latent.get_xlabel() == "z4 posterior mean (σ²=0.82)"
  assert ax_latent.get_ylabel() == "z1 posterior mean (σ²=0.28)"
  # Every line in both panels, in the same colour.
  assert len(ax_true.lines) == len(ax_latent.lines) == len(lines)
  for a, b in zip(ax_true.lines, ax_latent.lines):
    assert a.get_color() is not None
    np.testing.assert_allclose(a.get_color(), b.get_color())
  # Without factor names the labels give the indices only.
  unnamed = figures.latent_geometry_figure(geometry._replace(
      factor_names=None))
  assert unnamed.axes[0].get_xlabel() == "factor 2 index"
  width, height = _png_size(
      figures.plot_latent_geometry(geometry, str(tmp_path / "g.png")))
  assert width > height > 300
