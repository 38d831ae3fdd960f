"""The model figures show what their captions say (issue 18, item 5).

Latent-geometry probes differ only in the two grid factors (colour at the
bin centre); traversals show each decoder's median-MIG seed, named in the
caption; the non-coding rule says what it dropped. The selection and the
rendering are tested on arrays and fake models; one tiny real study (3 seeds
of 4 training steps) checks that the report's captions name what it drew.
"""
import os
import re
import sys

import numpy as np
import pandas as pd
import pytest

import sbd_plugin  # pylint: disable=unused-import
from disentanglement_lib.data.ground_truth import dummy_data
from evaluation import analysis
from evaluation import figure_runs
from evaluation import latent_geometry
from evaluation import latent_traversals
from sbd_plugin.datasets import colored_sprites
from tests.helpers import REPO
from tests.helpers import run_tool
from tests.helpers import study_toml

POS_X, POS_Y = 3, 4  # colored sprites' position factors


@pytest.fixture(scope="module")
def sprites():
  return colored_sprites.ColoredSprites()


class _RecordingModel(object):
  """Encodes an image to its first latents; keeps every image it was given."""
  activation = "logits"

  def __init__(self, num_latent=4):
    self.num_latent = num_latent
    self.images = []

  def encode(self, images):
    self.images.append(np.array(images))
    flat = np.asarray(images).reshape(len(images), -1)
    mean = flat[:, :self.num_latent] + np.arange(self.num_latent)
    return mean, np.zeros_like(mean)


# --- (a) Latent-geometry probes: only the two grid factors vary ---------------


def _probe_images(sprites, seed=0):
  model = _RecordingModel()
  g = latent_geometry.latent_geometry(model, sprites, POS_X, POS_Y,
                                      num_lines=3, points_per_line=5,
                                      seed=seed)
  points = np.concatenate([line.points for line in g.lines])
  return g, points, np.concatenate(model.images)


def test_fixed_rendering_is_the_bin_centre_colour(sprites):
  factors = np.array([[0, 5, 0, 10, 20, 1, 2, 3],
                      [2, 3, 7, 30, 1, 1, 2, 3]])
  images = sprites.fixed_observations_from_factors(factors)
  np.testing.assert_array_equal(
      images, sprites.fixed_observations_from_factors(factors))
  centre = colored_sprites.hsv_to_rgb(
      [[sprites.colour_values[c][b] for c, b in enumerate(factors[0, 5:])]])
  lit = images.max(-1) > 0
  for image, mask in zip(images, lit):
    assert mask.sum() > 10
    np.testing.assert_allclose(image[mask], np.tile(centre, (mask.sum(), 1)),
                               atol=1e-6)
    assert not image[~mask].any()  # black background


def test_geometry_probes_differ_only_in_the_grid_factors(sprites):
  g, points, images = _probe_images(sprites)
  assert g.rendering == latent_geometry.BIN_CENTRE
  assert len(images) == len(points) == 2 * 3 * 5
  # Every probe is the fixed rendering of the base factors with only posX
  # and posY replaced.
  factors = np.repeat(g.base_factors[None], len(points), axis=0)
  factors[:, POS_X], factors[:, POS_Y] = points[:, 0], points[:, 1]
  np.testing.assert_array_equal(
      images, sprites.fixed_observations_from_factors(factors))
  # Probes at the same (x, y) (where lines cross) are the same image.
  same = [(i, j) for i in range(len(points)) for j in range(i)
          if (points[i] == points[j]).all()]
  assert len(same) == 9  # 3 x 3 crossings
  for i, j in same:
    np.testing.assert_array_equal(images[i], images[j])
  # One colour in every probe's sprite pixels: images differ in position only.
  lit = images.max(-1) > 0
  colours = np.unique(images[lit], axis=0)
  assert len(colours) == 1
  # Rendering with the random state, as before, gives each probe its own
  # colour inside the bin: the bug this guards against.
  random = sprites.sample_observations_from_factors(
      factors, np.random.RandomState(0))
  assert len(np.unique(random[random.max(-1) > 0], axis=0)) > 20


def test_probes_without_a_fixed_path_take_the_same_random_draws():
  """A dataset drawing a nuisance per image gets the same one in every probe."""

  class NoisyFactors(dummy_data.DummyData):
    factor_names = ["f%d" % i for i in range(10)]

    def sample_observations_from_factors(self, factors, random_state):
      noise = random_state.uniform(size=(len(factors), 64, 64, 1))
      noise[:, 0, :self.num_factors, 0] = factors
      return noise

  model = _RecordingModel()
  g = latent_geometry.latent_geometry(model, NoisyFactors(), 0, 3,
                                      num_lines=2, points_per_line=5, seed=4)
  images = np.concatenate(model.images)
  assert g.rendering == latent_geometry.SAME_DRAWS % 4
  np.testing.assert_array_equal(images[:, 1:], np.repeat(images[:1, 1:],
                                                         len(images), axis=0))
  points = np.concatenate([line.points for line in g.lines])
  np.testing.assert_array_equal(images[:, 0, [0, 3], 0], points)


# --- (b) The median-MIG seed of each decoder ---------------------------------


def test_median_position_is_the_lower_median_with_ties_by_seed():
  # Odd: the middle value.
  assert figure_runs.median_position([0.3, 0.1, 0.2], [0, 1, 2]) == (2, 2)
  # Even: the lower of the two middle ones (0.2, not 0.3).
  assert figure_runs.median_position([0.4, 0.1, 0.3, 0.2],
                                     [0, 1, 2, 3]) == (3, 2)
  # Equal values: the lower seed ranks first, wherever it is listed.
  assert figure_runs.median_position([0.5, 0.5], [3, 1]) == (1, 1)
  assert figure_runs.median_position([0.5, 0.5, 0.5], [9, 1, 4]) == (2, 2)


def _frame(mig_by_run, extra_metric="dci"):
  """A tidy results frame: run (decoder, beta, seed) -> MIG."""
  rows = []
  for (decoder, beta, seed), mig in mig_by_run.items():
    run_id = "d-vae-%s-b%s-seed%d" % (decoder, beta, seed)
    common = dict(run_id=run_id, dataset="d", model="vae", decoder=decoder,
                  beta=beta, seed=seed, model_dir="runs/%s/model" % run_id)
    if mig is not None:
      rows.append(dict(common, metric="mig", value=mig))
    rows.append(dict(common, metric=extra_metric, value=0.5))
  return pd.DataFrame(rows)


def test_shown_runs_take_each_decoders_median_mig_seed():
  migs = {("broadcast", 1.0, 0): 0.09, ("broadcast", 1.0, 1): 0.30,
          ("broadcast", 1.0, 2): 0.20, ("broadcast", 1.0, 3): 0.25,
          ("deconv", 1.0, 0): 0.05, ("deconv", 1.0, 1): 0.01,
          ("deconv", 1.0, 2): 0.03,
          # A larger beta that only one decoder has is not the common one.
          ("broadcast", 4.0, 0): 0.9}
  [(key, shown)] = figure_runs.shown_runs(_frame(migs), "deconv")
  assert key == ("d", "vae")
  assert [s.run.decoder for s in shown] == ["deconv", "broadcast"]
  deconv, broadcast = shown
  assert (deconv.run.seed, deconv.mig, deconv.rank, deconv.count) == (
      2, 0.03, 2, 3)
  # Four seeds 0.09 < 0.20 < 0.25 < 0.30: the lower middle one, seed 2.
  assert (broadcast.run.seed, broadcast.mig, broadcast.rank,
          broadcast.count) == (2, 0.20, 2, 4)
  assert broadcast.run.beta == 1.0 and broadcast.fallback is None


def test_shown_runs_fall_back_to_the_lowest_seed_without_mig():
  runs = {("deconv", 1.0, 2): None, ("deconv", 1.0, 1): None}
  [(_, [shown])] = figure_runs.shown_runs(_frame(runs), "deconv")
  assert shown.run.seed == 1 and shown.mig is None
  assert shown.fallback == "MIG is not among the study's metrics"
  # MIG in the study but missing for this decoder's runs.
  runs[("broadcast", 1.0, 0)] = 0.2
  shown = dict((s.run.decoder, s) for s in
               figure_runs.shown_runs(_frame(runs), "deconv")[0][1])
  assert shown["deconv"].fallback == (
      "no run of this decoder here has a MIG value")
  assert shown["broadcast"].fallback is None


def test_cpu_evidence_broadcast_median_is_not_seed_0():
  """In docs/cpu_evidence broadcast seed 0, drawn before, is 5th of 6 on MIG."""
  frame = pd.read_csv(os.path.join(REPO, "docs", "cpu_evidence", "results",
                                   "results.csv"))
  shown = {s.run.decoder: s for _, runs in
           figure_runs.shown_runs(frame, "deconv") for s in runs}
  broadcast = shown["broadcast"]
  mig = frame[(frame["metric"] == "mig") &
              (frame["decoder"] == "broadcast")].sort_values(["value", "seed"])
  assert broadcast.count == len(mig) == 6
  assert broadcast.rank == 3
  assert broadcast.run.seed == mig["seed"].iloc[2] != 0
  assert list(mig["seed"])[::-1].index(0) == 4  # seed 0 is 5th best of 6


# --- (c) What the non-coding rule dropped -----------------------------------


def test_non_coding_lists_the_latents_above_the_threshold():
  variances = np.array([0.9, 0.05, 1.0, 0.3, 0.8, 0.3])
  shown = latent_traversals.latent_order(variances)
  np.testing.assert_array_equal(latent_traversals.non_coding(variances,
                                                             shown), [0, 2])
  # All non-coding: the lowest is shown anyway and not counted as dropped.
  variances = np.array([0.95, 0.9, 1.0])
  shown = latent_traversals.latent_order(variances)
  np.testing.assert_array_equal(shown, [1])
  np.testing.assert_array_equal(
      latent_traversals.non_coding(variances, shown), [0, 2])
  # A latent cut by max_latents is not non-coding.
  variances = np.array([0.1, 0.2, 0.3])
  shown = latent_traversals.latent_order(variances, max_latents=1)
  assert latent_traversals.non_coding(variances, shown).size == 0


class _VarianceModel(object):
  """Fixed posterior variances; the decoder shows the code."""
  activation = "logits"

  def __init__(self, variances):
    self.variances = np.asarray(variances, float)

  def encode(self, images):
    mean = np.asarray(images).reshape(len(images), -1)[:, :len(self.variances)]
    return mean, np.log(np.tile(self.variances, (len(images), 1)))

  def decode(self, latents):
    return np.asarray(latents)[:, None, :, None]


def test_traversals_record_what_they_dropped():
  model = _VarianceModel([1.0, 0.1, 0.95, 0.02, 0.5])
  t = latent_traversals.traversal_images(model, dummy_data.DummyData(),
                                         num_values=3)
  np.testing.assert_array_equal(t.latents, [3, 1, 4])
  np.testing.assert_array_equal(t.dropped, [0, 2])
  assert t.max_variance == latent_traversals.NON_CODING_VARIANCE


# --- The report's captions on a tiny real study ------------------------------


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
  """3 seeds of a deconv VAE, 4 steps each, MIG only, with model figures.

  Trains: the captions name runs by their real MIG, which only a study has.
  """
  root = tmp_path_factory.mktemp("truthful")
  text = study_toml(name="truthful", seeds=(0, 1, 2), traversals=True,
                    metrics=("mig",))
  text = text.replace("traversals = true", "traversals = true\n"
                      'latent_geometry = ["posX", "posY"]')
  spec = root / "study.toml"
  spec.write_text(text)
  out = root / "out"
  run_tool([sys.executable, "-m", "evaluation.cli", "run", str(spec),
            "--output", str(out), "--jobs", "1"], timeout=1500)
  return out


def _section(report, title):
  start = report.index("### " + title)
  end = report.find("\n### ", start + 1)
  return report[start:end if end >= 0 else None]


def test_report_captions_name_the_median_seed_and_the_dropped(tiny_study):
  out = tiny_study
  report = (out / "report.md").read_text()
  frame = pd.read_csv(out / "results" / "results.csv")
  mig = frame[frame["metric"] == "mig"].sort_values(["value", "seed"])
  median = mig.iloc[1]  # 3 seeds: the second by (MIG, seed)
  traversals = _section(report, "Traversals: colored_sprites, vae, deconv")
  assert ("Model of run `%s` (seed %d, β=" % (median["run_id"],
                                              median["seed"]) in traversals)
  assert ("MIG %.4f: rank 2 of the decoder's 3 runs at this strength, "
          "counted from the lowest MIG" % median["value"]) in traversals
  assert "the median" in traversals
  # The dropped latents are those of the model's own posterior variances.
  data = analysis.load_dataset("colored_sprites")
  t = latent_traversals.traversal_images(
      str(out / median["model_dir"]), data)
  said = re.search(r"dropped: ([^;.]*)", traversals).group(1)
  expected = ", ".join("z%d" % k for k in t.dropped) or "none"
  assert said.startswith(expected)
  geometry = _section(report, "Latent geometry: colored_sprites, vae, deconv")
  assert "other factors fixed (colour at its bin's centre)" in geometry
  assert "run `%s`" % median["run_id"] in geometry
  assert os.path.exists(out / "figures" /
                        "geometry-colored_sprites-vae-deconv.png")
