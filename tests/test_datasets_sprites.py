"""Tests for colored sprites and variants (sbd_plugin/datasets/: dsprites_*,
colored_sprites, holdout).

The generated mask caches are built once per session into the session's
SBD_PLUGIN_CACHE (tests/conftest.py) (about 30 s each for colored_sprites and
small_colored_sprites on 2 cores). The real-file reader is tested on small
fake files in the real layout (a 3 GB fake is out of reach): the streaming
reader and converter take the expected image count, so the same code that
converts the real file converts the first 2,048 dSprites masks here.
"""
import colorsys
import json
import logging
import os

import gin
from matplotlib import colors as mpl_colors
import numpy as np
import pytest

from sbd_plugin.datasets import cache
from sbd_plugin.datasets import colored_sprites
from sbd_plugin.datasets import data_dir
from sbd_plugin.datasets import dsprites_masks
from sbd_plugin.datasets import dsprites_raster
from sbd_plugin.datasets import holdout
from tests import reference_frames

GIF = os.path.join(os.path.dirname(__file__), "data", "reference",
                   "dsprites.gif")


@pytest.fixture(autouse=True)
def _clean_gin():
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture(scope="session")
def data():
  return colored_sprites.ColoredSprites()


def _centroid(images):
  """Row and column centroids [N, 2] of the lit pixels of images [N,H,W,3]."""
  lit = images.max(-1) > 0
  rows, cols = np.indices(lit.shape[1:])
  area = lit.sum((1, 2))
  return np.stack([(lit * rows).sum((1, 2)) / area,
                   (lit * cols).sum((1, 2)) / area], 1)


def _factors(data, n=1, **values):
  f = np.zeros((n, 8), dtype=np.int64)
  for name, v in values.items():
    f[:, data.factor_names.index(name)] = v
  return f


def test_factor_cardinalities_and_grids(data):
  assert data.num_factors == 8
  assert data.factors_num_values == [3, 6, 40, 32, 32, 4, 4, 4]
  assert data.observation_shape == [64, 64, 3]
  assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY",
                               "hue", "saturation", "value")
  np.testing.assert_allclose(data.factor_values(1), np.linspace(0.5, 1, 6))
  np.testing.assert_allclose(data.factor_values(2),
                             np.linspace(0, 2 * np.pi, 40))
  np.testing.assert_allclose(data.factor_values(3), np.linspace(0, 1, 32))
  np.testing.assert_allclose(data.factor_values(5), [.125, .375, .625, .875])
  np.testing.assert_allclose(data.factor_values(6), [.5625, .6875, .8125,
                                                     .9375])


def test_gin_bins_and_box():
  gin.parse_config(["colored_sprites.num_hue_bins = 6",
                    "colored_sprites.value_range = (0.8, 1.0)"])
  d = colored_sprites.ColoredSprites()
  assert d.factors_num_values[5:] == [6, 4, 4]
  np.testing.assert_allclose(d.factor_values(7), [.825, .875, .925, .975])
  images = d.sample_observations(256, np.random.RandomState(0))
  # Value is the max RGB channel; all sprites are at least 0.8 bright, and
  # the lowest value bin reaches below its centre (0.825).
  brightness = images.max((1, 2, 3))
  assert brightness.min() >= 0.8 - 1e-6 and brightness.min() < 0.825


def test_sampling_types_range_and_determinism(data):
  f1, x1 = data.sample(64, np.random.RandomState(3))
  f2, x2 = data.sample(64, np.random.RandomState(3))
  assert f1.dtype == np.int64 and f1.shape == (64, 8)
  assert (f1 >= 0).all() and (f1 < np.array(data.factors_num_values)).all()
  assert x1.dtype == np.float32 and x1.shape == (64, 64, 64, 3)
  assert x1.min() >= 0 and x1.max() <= 1
  np.testing.assert_array_equal(f1, f2)
  np.testing.assert_array_equal(x1, x2)
  # sample() is sample_factors then the colours, from the same state.
  rs = np.random.RandomState(3)
  f3 = data.sample_factors(64, rs)
  np.testing.assert_array_equal(
      data.sample_observations_from_factors(f3, rs), x1)


def test_position_moves_centroid_right_and_down(data):
  f = _factors(data, 32, shape=1, scale=5)
  f[:, 3] = np.arange(32)
  c = _centroid(data.sample_observations_from_factors(f, None))
  assert (np.diff(c[:, 1]) > 0).all()  # posX: columns, left to right.
  np.testing.assert_allclose(c[:, 0], 15.5, atol=0.01)
  np.testing.assert_allclose(c[[0, -1], 1] + 0.5, [16, 48], atol=0.01)
  f = _factors(data, 32, shape=1, scale=5)
  f[:, 4] = np.arange(32)
  c = _centroid(data.sample_observations_from_factors(f, None))
  assert (np.diff(c[:, 0]) > 0).all()  # posY: rows, top to bottom.


def test_scale_grows_area_and_background_is_black(data):
  f = _factors(data, 6, shape=0)  # Centre (16, 16): whole-pixel edges.
  f[:, 1] = np.arange(6)
  images = data.sample_observations_from_factors(f, None)
  area = (images.max(-1) > 0).sum((1, 2))
  assert (np.diff(area) > 0).all()
  assert area[-1] == 400  # Unrotated square: 20 x 20 px at scale 1.
  lit = images.max(-1) > 0
  assert (images[~lit] == 0).all()
  assert (images[:, :2].max() == 0) and (images[:, :, -2:].max() == 0)


def _sprite_colours(images):
  """The one RGB colour [N, 3] of each sprite of images [N, 64, 64, 3]."""
  lit = images.max(-1) > 0
  colours = np.array([image[mask][0] for image, mask in zip(images, lit)])
  for image, mask, colour in zip(images, lit, colours):
    assert (image[mask] == colour).all()  # One colour per sprite.
  return colours


def _offsets_in_boxes(data, factors, colours):
  """Where colours [N, 3] lie in their bins' HSV boxes, in bin widths.

  0 is the box's low edge, 1 its high edge; hue is compared on the circle.
  """
  low, high = data.colour_boxes(factors[:, 5:])
  hsv = mpl_colors.rgb_to_hsv(colours.astype(np.float64))
  offset = hsv - low
  offset[:, 0] = (offset[:, 0] + 0.5) % 1. - 0.5
  return offset / (high - low)


def test_hsv_to_rgb_matches_colorsys():
  rs = np.random.RandomState(0)
  hsv = rs.random_sample((1000, 3))
  hsv[:, 0] = hsv[:, 0] * 3. - 1.  # Any hue: taken modulo 1.
  hsv[:6, 0] = np.arange(6) / 6.  # The corners of the hexagon.
  want = np.array([colorsys.hsv_to_rgb(h % 1., s, v) for h, s, v in hsv])
  np.testing.assert_allclose(colored_sprites.hsv_to_rgb(hsv), want,
                             atol=1e-7)
  np.testing.assert_array_equal(colored_sprites.hsv_to_rgb(hsv, repeat=8),
                                np.tile(colored_sprites.hsv_to_rgb(hsv), 8))


def test_one_factor_row_draws_many_colours_inside_its_bin(data):
  f = _factors(data, 2000, shape=2, scale=5, posX=16, posY=16, hue=1,
               saturation=2, value=3)
  images = data.sample_observations_from_factors(f, np.random.RandomState(0))
  lit = images.max(-1) > 0
  assert (lit == lit[0]).all()  # Colour only: the geometry is the factors'.
  colours = _sprite_colours(images)
  assert len(np.unique(colours, axis=0)) > 1990
  offsets = _offsets_in_boxes(data, f, colours)
  assert offsets.min() >= -1e-4 and offsets.max() <= 1 + 1e-4
  # Uniform in the box: every channel spans it.
  assert (offsets.min(0) < 0.01).all() and (offsets.max(0) > 0.99).all()


def test_colour_bins_do_not_overlap(data):
  rs = np.random.RandomState(1)
  f = data.sample_factors(20000, rs)
  colours = _sprite_colours(data.sample_observations_from_factors(f, rs))
  offsets = _offsets_in_boxes(data, f, colours)
  # Every colour lies in its own bin's box ...
  assert offsets.min() >= -1e-4 and offsets.max() <= 1 + 1e-4
  # ... and the boxes of neighbouring bins touch but do not overlap.
  hsv = mpl_colors.rgb_to_hsv(colours.astype(np.float64))
  # Hue on the turn of the circle nearest its bin centre (1 - 1e-9 is 0).
  centre = data.factor_values(5)[f[:, 5]]
  hsv[:, 0] += np.round(centre - hsv[:, 0])
  low, high = data.colour_boxes(np.zeros((1, 3), np.int64))
  width = (high - low)[0]
  for channel in range(3):
    bins = f[:, 5 + channel]
    highest = np.array([hsv[bins == b, channel].max() for b in range(4)])
    lowest = np.array([hsv[bins == b, channel].min() for b in range(4)])
    assert (highest[:-1] <= lowest[1:] + 1e-5).all()
    # Each bin's colours fill its box.
    assert (highest - lowest > 0.95 * width[channel]).all()


def test_hue_bin_that_spans_one_wraps_around():
  gin.parse_config(["colored_sprites.hue_range = (0.875, 1.875)"])
  d = colored_sprites.ColoredSprites()
  f = _factors(d, 2000, shape=0, scale=5, posX=16, posY=16, hue=0,
               saturation=3, value=3)
  colours = _sprite_colours(
      d.sample_observations_from_factors(f, np.random.RandomState(2)))
  offsets = _offsets_in_boxes(d, f, colours)
  assert offsets.min() >= -1e-4 and offsets.max() <= 1 + 1e-4
  hue = mpl_colors.rgb_to_hsv(colours.astype(np.float64))[:, 0]
  # Reds on both sides of hue 0: [0.875, 1) and [0, 0.125).
  assert ((hue > 0.875) & (hue < 0.9)).any() and (hue < 0.02).any()
  assert not ((hue > 0.125 + 1e-5) & (hue < 0.875 - 1e-5)).any()
  assert (colours.argmax(1) == 0).all()


def test_same_random_state_gives_the_same_images(data):
  f = data.sample_factors(64, np.random.RandomState(4))
  first = data.sample_observations_from_factors(f, np.random.RandomState(7))
  again = data.sample_observations_from_factors(f, np.random.RandomState(7))
  other = data.sample_observations_from_factors(f, np.random.RandomState(8))
  np.testing.assert_array_equal(first, again)
  # Another state: the same sprites in other colours of the same bins.
  np.testing.assert_array_equal(first.max(-1) > 0, other.max(-1) > 0)
  assert not np.array_equal(_sprite_colours(first), _sprite_colours(other))
  assert np.abs(_offsets_in_boxes(data, f, _sprite_colours(other)) -
                0.5).max() <= 0.5 + 1e-4


def test_colour_factors_set_the_sprite_colour(data):
  f = _factors(data, 4, shape=2, scale=5, posX=16, posY=16, saturation=3,
               value=3)
  f[:, 5] = np.arange(4)
  # Without a random_state a sprite has its bin's centre colour.
  colours = _sprite_colours(data.sample_observations_from_factors(f, None))
  # Hue bin centres 0.125 (orange), 0.375 (green), 0.625 (blue), 0.875
  # (magenta) at s = v = 0.9375.
  assert colours.argmax(1).tolist() == [0, 1, 2, 0]
  np.testing.assert_allclose(colours.max(1), 0.9375, atol=1e-6)
  np.testing.assert_allclose(colours.min(1), 0.9375 * (1 - 0.9375), atol=1e-6)


def test_orientation_zero_ellipse_is_wide_and_heart_points_down(data):
  f = _factors(data, 2, scale=5, posX=16, posY=16)
  f[:, 0] = [1, 2]
  lit = data.sample_observations_from_factors(f, None).max(-1) > 0
  rows, cols = np.nonzero(lit[0])
  assert np.ptp(cols) > 1.5 * np.ptp(rows)
  rows, cols = np.nonzero(lit[1])
  top = lit[1][rows.min():rows.min() + 4].sum()
  bottom = lit[1][rows.max() - 3:rows.max() + 1].sum()
  assert top > 2 * bottom  # Lobes up, tip down.


def test_cache_matches_renderer(data):
  rs = np.random.RandomState(1)
  indices = rs.randint(dsprites_raster.NUM_MASKS, size=200)
  f = np.zeros((200, 8), np.int64)
  f[:, :5] = dsprites_raster.index_to_factors(indices)
  np.testing.assert_array_equal(data.masks_from_factors(f),
                                dsprites_raster.render_mask_indices(indices))


def _real_frames():
  return reference_frames.load_gif_masks(GIF)


def test_generated_masks_match_real_dsprites_frames():
  ious, _ = reference_frames.best_match_iou(_real_frames())
  assert len(ious) == 320
  # Measured: mean 0.979, min 0.907 (see docs/datasets/sprites.md).
  assert ious.mean() > 0.97 and ious.min() > 0.88


@pytest.mark.parametrize("wrong", ["size x1.15", "size x0.85", "transposed"])
def test_wrong_geometry_fails_real_frame_match(wrong):
  def render(shape, scale, orientation, x, y):
    if wrong == "transposed":
      # Axes swapped: the sprite drawn with rows and columns exchanged.
      return np.swapaxes(
          dsprites_raster.render_masks(shape, scale, orientation, y, x), 1, 2)
    factor = 1.15 if wrong == "size x1.15" else 0.85
    return dsprites_raster.render_masks(shape, scale, orientation, x, y, factor)
  frames = _real_frames()[::4]
  ious, _ = reference_frames.best_match_iou(frames, render_fn=render)
  assert ious.mean() < 0.97 or ious.min() < 0.88


def test_missing_real_file_warns_once(data, caplog, monkeypatch):
  monkeypatch.setattr(dsprites_masks, "_warned_missing_real", False)
  with caplog.at_level(logging.WARNING):
    colored_sprites.ColoredSprites()
    colored_sprites.ColoredSprites()
  messages = [r.getMessage() for r in caplog.records
              if "not found" in r.getMessage()]
  assert len(messages) == 1 and data_dir.DSPRITES_NPZ in messages[0]


def test_wrong_shaped_real_file_is_an_error(tmp_path, monkeypatch):
  monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(tmp_path))
  path = tmp_path / data_dir.DSPRITES_NPZ
  path.parent.mkdir(parents=True)
  np.savez(path, imgs=np.zeros((10, 64, 64), np.uint8))
  with pytest.raises(ValueError) as e:
    colored_sprites.ColoredSprites()
  assert str(path) in str(e.value)
  assert "(737280, 64, 64)" in str(e.value) and "(10, 64, 64)" in str(e.value)
  path.write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="not a readable .npz"):
    colored_sprites.ColoredSprites()


def test_real_layout_file_converts_to_the_same_masks(data, tmp_path):
  n = 2048  # The first two (shape, scale, orientation) combinations.
  masks = dsprites_raster.render_mask_indices(np.arange(n)).astype(np.uint8)
  path = tmp_path / "small.npz"
  np.savez_compressed(path, imgs=masks, latents_classes=np.zeros((n, 6)))
  converted = dsprites_masks.convert_real_masks(str(path), expected_count=n)
  np.testing.assert_array_equal(converted, data.masks[:n])
  with pytest.raises(ValueError, match="(2048, 64, 64)"):
    dsprites_masks.convert_real_masks(str(path), expected_count=4096)
  masks[5, 0, 0] = 1  # A pixel far outside the sprite's window.
  np.savez_compressed(path, imgs=masks)
  with pytest.raises(ValueError, match="window"):
    dsprites_masks.convert_real_masks(str(path), expected_count=n)


def test_corrupt_cache_is_rebuilt_with_a_warning(tmp_path, monkeypatch,
                                                 caplog):
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path))
  # A small, fast asset.
  monkeypatch.setattr(dsprites_raster, "NUM_MASKS", 2048)
  first = np.array(dsprites_masks.generated_masks(0.7))
  path = next(tmp_path.glob("sprites_generated*/masks.npy"))
  raw = bytearray(path.read_bytes())
  raw[-100:] = b"\xff" * 100
  path.write_bytes(bytes(raw))
  # A new process: cache.py memoises verified loads within a process.
  cache._load_verified.cache_clear()  # pylint: disable=protected-access
  with caplog.at_level(logging.WARNING):
    again = np.array(dsprites_masks.generated_masks(0.7))
  assert any("Rebuilding" in r.getMessage() for r in caplog.records)
  np.testing.assert_array_equal(again, first)


@pytest.mark.parametrize("manifest", ['{"version": "%s"}', "[]",
                                      '{"version": "%s", "arrays": {"m": 1}}'])
def test_manifest_without_its_keys_is_rebuilt(tmp_path, monkeypatch, caplog,
                                              manifest):
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path))
  monkeypatch.setattr(dsprites_raster, "NUM_MASKS", 2048)
  first = np.array(dsprites_masks.generated_masks(0.7))
  path = next(tmp_path.glob("sprites_generated*/manifest.json"))
  version = json.loads(path.read_text())["version"]
  path.write_text(manifest.replace("%s", version))
  # A build killed mid-write left its temporary folder behind.
  stale = path.parent.parent / ("." + path.parent.name + ".killed")
  stale.mkdir()
  cache._load_verified.cache_clear()  # pylint: disable=protected-access
  with caplog.at_level(logging.WARNING):
    again = np.array(dsprites_masks.generated_masks(0.7))
  assert any("Rebuilding" in r.getMessage() for r in caplog.records)
  np.testing.assert_array_equal(again, first)
  assert not stale.exists()


def test_holdout_default_region_is_lower_right_quadrant():
  region = holdout.holdout_region()
  assert region.posx_indices.tolist() == list(range(16, 32))
  assert region.posy_indices.tolist() == list(range(16, 32))
  f = np.zeros((4, 8), np.int64)
  f[:, 3:5] = [[16, 16], [15, 16], [16, 15], [31, 31]]
  assert holdout.in_holdout_region(f).tolist() == [True, False, False, True]


def test_holdout_train_never_and_test_only_samples_region(data):
  gin.parse_config(["holdout_region.posx_range = (0.25, 0.75)",
                    "holdout_region.shapes = ['heart']"])
  train = holdout.HoldoutTrainColoredSprites()
  test = holdout.HoldoutTestColoredSprites()
  rs = np.random.RandomState(0)
  f_train = train.sample_factors(20000, rs)
  f_test = test.sample_factors(20000, rs)
  assert not train.region.contains(f_train).any()
  assert test.region.contains(f_test).all()
  # Outside the region the training set is still uniform: hearts appear.
  assert (f_train[:, 0] == 2).any() and (f_test[:, 0] == 2).all()
  assert set(np.unique(f_test[:, 3])) == set(range(8, 24))
  # Any factors render, inside the region or not (dlib metrics need this).
  images = train.sample_observations_from_factors(f_test[:8],
                                                  np.random.RandomState(5))
  np.testing.assert_array_equal(images, data.sample_observations_from_factors(
      f_test[:8], np.random.RandomState(5)))


def test_small_sprites_are_smaller():
  small = colored_sprites.SmallColoredSprites()
  assert small.factors_num_values == [3, 6, 40, 32, 32, 4, 4, 4]
  f = np.zeros((3, 8), np.int64)
  f[:, 0] = [0, 1, 2]
  f[:, 1] = 5
  area = (small.sample_observations_from_factors(f, None).max(-1) > 0).sum(
      (1, 2))
  full = dsprites_raster.render_masks([0, 1, 2], [1.] * 3, [0.] * 3,
                                      [0.] * 3, [0.] * 3).sum((1, 2))
  np.testing.assert_allclose(area / full, 0.25, atol=0.04)
  assert area[0] == 100  # Square: 10 x 10 px at scale 1.


def test_the_report_knows_which_datasets_score_colour_by_bin():
  # The report names them without importing the dataset classes.
  from evaluation import report  # pylint: disable=g-import-not-at-top
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top
  binned = {name for name in registry.PLUGIN_DATASETS if issubclass(
      registry.PLUGIN_DATASETS.load(name), colored_sprites.ColoredSprites)}
  assert set(report.BINNED_COLOUR_DATASETS) == binned


def test_the_colour_note_names_every_binned_dataset_of_a_study_as_a_list():
  from evaluation import report  # pylint: disable=g-import-not-at-top
  note = report._colour_factors_note(  # pylint: disable=protected-access
      ["small_colored_sprites", "object_in_room", "colored_sprites"])[0]
  assert note.startswith("Factors: colour in `small_colored_sprites` and "
                         "`colored_sprites` is continuous")
  three = report._colour_factors_note(  # pylint: disable=protected-access
      ["colored_sprites", "colored_sprites_holdout_train",
       "colored_sprites_holdout_test"])[0]
  assert ("colour in `colored_sprites`, `colored_sprites_holdout_train` and "
          "`colored_sprites_holdout_test` is" in three)
  assert report._colour_factors_note(["object_in_room"]) == []  # pylint: disable=protected-access
