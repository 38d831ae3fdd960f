"""Tests of evaluation/figures.py and latent_figures.py: figures drawn from
given numbers.

The DataFrame figures are checked on synthetic study results, the model
figures on synthetic Traversals / Geometry tuples (their computation from a
model is tested in tests/test_analysis.py).
"""
import os

import numpy as np
import pandas as pd
from PIL import Image
import pytest

from evaluation import figures
from evaluation import latent_figures
from evaluation import latent_geometry
from evaluation import latent_traversals
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
  # The paper's pair looks like dlib's; with both, every colour differs.
  assert figures.decoder_colours(["paper_broadcast", "paper_deconv"]) == {
      "paper_broadcast": "tab:blue", "paper_deconv": "tab:orange"}
  both = figures.decoder_colours(["broadcast", "deconv", "paper_broadcast",
                                  "paper_deconv"])
  assert len(set(both.values())) == 4


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


def test_many_metrics_wrap_onto_rows_that_stay_readable(tmp_path):
  df = _results(betas=(1.0,), seeds=3)
  labels = ["m%02d" % i for i in range(16)]
  df = pd.concat([df[df.metric == "mig"].assign(metric=label, value=i)
                  for i, label in enumerate(labels)])
  fig = figures.metric_distributions_figure(df, metrics=labels)
  axes = fig.axes
  assert len(axes) == 2 * 16  # 2 models x 16 metrics, no empty panels
  # factor_vae's 16 panels: rows of at most 6, each panel titled.
  first = axes[:16]
  assert [ax.get_title() for ax in first] == labels
  rows = [ax.get_subplotspec().rowspan.start for ax in first]
  assert rows == [0] * 6 + [1] * 6 + [2] * 4
  assert all(ax.get_subplotspec().colspan.start < 6 for ax in axes)
  # Each block row is labelled with its dataset and model.
  assert [ax.get_ylabel().split("\n")[1] for ax in first[::6]] == [
      "factor_vae"] * 3
  # A metric's panels share their y axis across models.
  assert axes[5].get_shared_y_axes().joined(axes[5], axes[16 + 5])
  assert not axes[5].get_shared_y_axes().joined(axes[5], axes[6])
  width, height = _png_size(figures.plot_metric_distributions(
      df, str(tmp_path / "many.png"), metrics=labels))
  assert width < 2000  # six panels wide, not sixteen


def test_rate_distortion_beta_sweep_and_single_beta(tmp_path):
  df = _results(betas=(0.5, 1.0, 4.0), seeds=3)
  runs = figures.run_table(df)
  assert len(runs) == 2 * 3 * 2 * 3  # models x betas x decoders x seeds
  assert runs["run_id"].is_unique
  one = runs[runs.run_id == "vae_4_deconv_2"].iloc[0]
  assert one["mig"] == pytest.approx(0.1 * 2 ** 2 + 0.05 + 0.004)
  fig = figures.rate_distortion_figure(df)
  assert len(fig.axes) == 2 * 2  # (factor_vae, vae) x (RD, MIG)
  # The first line of panel (a) joins deconv's per-beta mean KLs in order.
  line = fig.axes[0].lines[0]
  # deconv: kl = 10 * beta + 1 + seed**2, mean 10 * beta + 8/3 over seeds
  # 0..2 (the median would be 10 * beta + 2); recon = 105 - kl.
  np.testing.assert_allclose(line.get_xdata(), np.array([5, 10, 40]) + 8 / 3)
  np.testing.assert_allclose(line.get_ydata(),
                             np.array([100, 95, 65]) - 8 / 3)
  assert fig.axes[1].get_xlabel() == "MIG"
  figures.plot_rate_distortion(df, str(tmp_path / "rd.png"))

  single = _results(betas=(2.0,), models=("vae",))
  fig = figures.rate_distortion_figure(single)
  assert len(fig.axes) == 2
  assert len(fig.axes[0].lines[0].get_xdata()) == 1  # one mean point
  width, height = _png_size(
      figures.plot_rate_distortion(single, str(tmp_path / "rd1.png")))
  assert width > height


def test_rate_distortion_legend_names_the_strength_as_the_model_does():
  def legend(models):
    fig = figures.rate_distortion_figure(_results(models=models))
    return [t.get_text() for t in fig.legends[0].get_texts()]
  assert legend(("factorvae",))[0] == (
      "deconv: mean ± 1 sd over seeds per γ")
  assert legend(("vae",))[0] == "deconv: mean ± 1 sd over seeds per β"
  assert legend(("vae", "factorvae"))[-1] == "one run"
  assert legend(("vae", "factorvae"))[0].endswith("per β/γ")


def test_rate_distortion_without_mig(tmp_path):
  df = _results(models=("vae",))
  df = df[df.metric != "mig"]
  fig = figures.rate_distortion_figure(df)
  assert any("no MIG values" in t.get_text() for t in fig.axes[1].texts)
  figures.plot_rate_distortion(df, str(tmp_path / "rd.png"))


def _errors(models=("vae",), betas=(1.0,)):
  return pd.DataFrame([
      dict(run_id="%s_%g_%s_%d" % (model, beta, d, s), model=model, beta=beta,
           decoder=d, seed=s, split=split,
           error=e + s ** 2 + 100 * m + 10 * b)
      for m, model in enumerate(models) for b, beta in enumerate(betas)
      for d, base in (("broadcast", 10.0), ("deconv", 20.0))
      for split, e in (("seen", base), ("held-out", base + 5))
      for s in range(3)])


def _legend_texts(fig):
  return [t.get_text() for t in fig.legends[0].get_texts()]


def test_heldout_generalisation(tmp_path):
  fig = figures.heldout_generalisation_figure(_errors())
  assert len(fig.axes) == 1
  ax = fig.axes[0]
  assert ax.get_title() == "vae, β=1"
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
  assert _legend_texts(fig) == ["seen", "held-out", "one seed"]
  assert [t.get_text() for t in ax.get_xticklabels()] == [
      "deconv\n(n=3)", "broadcast\n(n=3)"]
  _png_size(figures.plot_heldout_generalisation(_errors(),
                                                str(tmp_path / "h.png")))


def test_heldout_generalisation_per_model_and_beta(tmp_path):
  errors = _errors(models=("vae", "beta_vae"), betas=(1.0, 4.0))
  errors = pd.concat([errors, _errors(models=("vae",), betas=(np.nan,))])
  fig = figures.heldout_generalisation_figure(errors, max_columns=3)
  axes = [ax for ax in fig.axes if ax.get_visible()]
  # One panel per model and beta, none pooled; unknown betas kept.
  assert [ax.get_title() for ax in axes] == [
      "beta_vae, β=1", "beta_vae, β=4", "vae, β=1", "vae, β=4",
      "vae, β=unknown"]
  assert len(fig.axes) == 6  # 2 rows of 3, the last one hidden
  for ax in axes:
    model, beta = ax.get_title().split(", β=")
    cell = errors[(errors.model == model) & (
        errors.beta.isna() if beta == "unknown" else errors.beta ==
        float(beta))]
    expected = [cell[(cell.decoder == d) & (cell.split == s)]["error"]
                .median() for d in ("deconv", "broadcast")
                for s in ("seen", "held-out")]
    bars = sorted(ax.patches, key=lambda p: p.get_x())
    assert [p.get_height() for p in bars] == expected
    assert len(ax.collections[0].get_offsets()) == 12
  # The y axis is shared and labelled once per row.
  assert axes[0].get_ylabel() and not axes[1].get_ylabel()
  assert axes[3].get_ylabel()
  width, height = _png_size(figures.plot_heldout_generalisation(
      errors, str(tmp_path / "h5.png")))
  assert width > height


def test_heldout_generalisation_baseline_and_missing_errors():
  errors = _errors()
  errors.loc[(errors.decoder == "broadcast") & (errors.split == "seen"),
             "error"] = np.nan
  fig = figures.heldout_generalisation_figure(errors, baseline="broadcast")
  ax = fig.axes[0]
  assert [t.get_text() for t in ax.get_xticklabels()] == [
      "broadcast\n(n=3)", "deconv\n(n=3)"]
  assert sorted(p.get_height() for p in ax.patches) == [16.0, 21.0, 26.0]
  assert _legend_texts(fig) == ["seen", "held-out", "one seed"]
  empty = figures.heldout_generalisation_figure(errors.iloc[:0])
  assert any("no runs" in t.get_text() for t in empty.axes[0].texts)


# --- Model figures from synthetic tuples ---------------------------------------


def _traversals(rows, channels=3, seed=0):
  rs = np.random.RandomState(seed)
  return latent_traversals.Traversals(
      rs.uniform(size=(64, 64, channels)), rs.uniform(size=(64, 64, channels)),
      rs.uniform(size=(rows, 5, 64, 64, channels)), np.arange(rows)[::-1],
      np.linspace(0.1, 0.8, rows), np.linspace(-2, 2, 5))


def test_traversals_figure(tmp_path):
  one = _traversals(1, channels=1)
  fig = latent_figures.traversals_figure(one)
  grid = fig.axes[-1].images[0].get_array()
  # 1 row x 5 columns of 64 px images, 2 px of white padding between.
  assert grid.shape == (64, 5 * 64 + 4 * 2)
  np.testing.assert_allclose(grid[:, 64:66], 1.0)
  np.testing.assert_allclose(grid[:, 66:130], one.images[0, 1, ..., 0])
  path = latent_figures.plot_traversals(one, str(tmp_path / "t.png"))
  width, height = _png_size(path)
  assert 400 < width < 2000 and 150 < height < 2000
  # Rows grow the figure: 8 latents need a taller image than 1.
  many = latent_figures.traversals_figure(_traversals(8))
  labels = [l.get_text() for l in many.axes[-1].get_yticklabels()]
  assert labels[0] == "z7  (σ²=0.80)" and len(labels) == 8
  assert [l.get_text() for l in many.axes[-1].get_xticklabels()] == [
      "-2.0", "-1.0", "+0.0", "+1.0", "+2.0"]
  path8 = str(tmp_path / "t8.png")
  many.savefig(path8, dpi=figures.DPI)
  assert _png_size(path8)[1] > 2 * height


def _geometry(**fields):
  lines = latent_geometry.grid_of_lines(8, 5, num_lines=3, points_per_line=4)
  latent_points = [line.points * 0.5 for line in lines]
  variances = np.linspace(0.1, 1.0, 6)
  return latent_geometry.Geometry(lines, latent_points, np.array([4, 1]),
                                  variances, 2, 0, np.zeros(3, int),
                                  ["shape", "scale", "posX"], **fields)


def test_latent_geometry_figure(tmp_path):
  geometry = _geometry(scores=np.array([0.93, 0.871]))
  fig = latent_figures.latent_geometry_figure(geometry)
  ax_true, ax_latent = fig.axes
  assert ax_true.get_xlabel() == "factor 2 (posX) index"
  assert ax_true.get_ylabel() == "factor 0 (shape) index"
  assert ax_true.yaxis_inverted()  # y index downwards, as in an image
  # The chosen latents and their R^2 with the factor they track.
  assert ax_latent.get_xlabel() == "z4 posterior mean (R² with posX = 0.93)"
  assert ax_latent.get_ylabel() == "z1 posterior mean (R² with shape = 0.87)"
  # Every line in both panels, in the same colour.
  assert len(ax_true.lines) == len(ax_latent.lines) == len(geometry.lines)
  for a, b in zip(ax_true.lines, ax_latent.lines):
    assert a.get_color() is not None
    np.testing.assert_allclose(a.get_color(), b.get_color())
  # No region: nothing marked.
  assert not [p for p in ax_true.patches
              if p.get_gid() == latent_figures.HELDOUT_REGION]
  assert not [c for c in ax_latent.collections
              if c.get_gid() == latent_figures.HELDOUT_POINTS]
  # Without factor names the labels give the indices only.
  unnamed = latent_figures.latent_geometry_figure(geometry._replace(
      factor_names=None))
  assert unnamed.axes[0].get_xlabel() == "factor 2 index"
  assert unnamed.axes[1].get_xlabel() == (
      "z4 posterior mean (R² with factor 2 = 0.93)")
  width, height = _png_size(
      latent_figures.plot_latent_geometry(geometry, str(tmp_path / "g.png")))
  assert width > height > 300


def test_latent_geometry_figure_marks_the_heldout_region(tmp_path):
  plain = _geometry(scores=np.array([0.9, 0.8]))
  # Held out: x index >= 4 and y index <= 1, on both panels.
  in_region = [(l.points[:, 0] >= 4) & (l.points[:, 1] <= 1)
               for l in plain.lines]
  geometry = plain._replace(region_box=(4, 7, 0, 1), in_region=in_region)
  fig = latent_figures.latent_geometry_figure(geometry)
  ax_true, ax_latent = fig.axes
  boxes = [p for p in ax_true.patches
           if p.get_gid() == latent_figures.HELDOUT_REGION]
  assert len(boxes) == 1
  np.testing.assert_allclose(boxes[0].get_bbox().bounds,
                             (3.5, -0.5, 4.0, 2.0))  # covers the cells
  for ax, points in ((ax_true, [l.points for l in plain.lines]),
                     (ax_latent, plain.latent_points)):
    hollow = [c for c in ax.collections
              if c.get_gid() == latent_figures.HELDOUT_POINTS]
    expected = np.concatenate([p[m] for p, m in zip(points, in_region)])
    np.testing.assert_allclose(np.concatenate([c.get_offsets()
                                               for c in hollow]), expected)
    assert all(len(c.get_facecolors()) == 0 or
               np.all(c.get_facecolors()[:, 3] == 0) for c in hollow)
  assert "held-out region (never in training)" in _legend_texts(fig)
  # A region that misses the plane: no box, and no hollow points.
  missed = plain._replace(region_box=None,
                          in_region=[np.zeros(len(l.points), bool)
                                     for l in plain.lines])
  fig = latent_figures.latent_geometry_figure(missed)
  assert not [p for p in fig.axes[0].patches
              if p.get_gid() == latent_figures.HELDOUT_REGION]
  assert not [c for c in fig.axes[1].collections
              if c.get_gid() == latent_figures.HELDOUT_POINTS]
  _png_size(latent_figures.plot_latent_geometry(geometry,
                                                str(tmp_path / "r.png")))


def test_traversal_comparison_figure(tmp_path):
  deconv, broadcast = _traversals(3, seed=1), _traversals(5, seed=2)
  broadcast = broadcast._replace(seed_image=deconv.seed_image)
  fig = latent_figures.traversal_comparison_figure({"deconv": deconv,
                                                    "broadcast": broadcast})
  by_label = {ax.get_label(): ax for ax in fig.axes}
  for label, t in (("deconv", deconv), ("broadcast", broadcast)):
    ax = by_label["traversals:" + label]
    assert ax.get_title() == "%s decoder" % label
    grid = ax.images[0].get_array()
    rows = t.images.shape[0]
    assert grid.shape == (rows * 64 + (rows - 1) * 2, 5 * 64 + 4 * 2, 3)
    np.testing.assert_allclose(grid[:64, :64], t.images[0, 0])
    assert [l.get_text() for l in ax.get_yticklabels()] == [
        "z%d  (σ²=%.2f)" % (k, t.mean_variances[k]) for k in t.latents]
    rec = by_label["reconstruction:" + label].images[0].get_array()
    np.testing.assert_allclose(rec, t.reconstruction)
  # The shorter grid keeps the image scale: both span the taller's rows,
  # and says why it has fewer.
  assert (by_label["traversals:deconv"].get_ylim() ==
          by_label["traversals:broadcast"].get_ylim())
  assert [t.get_text() for t in by_label["traversals:deconv"].texts] == [
      "3 of 3 latents shown:\nthe others are non-coding"]
  assert not by_label["traversals:broadcast"].texts
  # Left to right in the dict's order, the shared input once.
  lefts = [by_label["traversals:" + l].get_position().x0
           for l in ("deconv", "broadcast")]
  assert lefts[0] < lefts[1]
  inputs = [ax for ax in fig.axes if ax.get_title() == "input"]
  assert len(inputs) == 1
  np.testing.assert_allclose(inputs[0].images[0].get_array(),
                             deconv.seed_image)
  width, height = _png_size(latent_figures.plot_traversal_comparison(
      {"deconv": deconv, "broadcast": broadcast}, str(tmp_path / "c.png")))
  assert width > height
