"""Tests for 3D Object-in-Room / 3dshapes (sbd_plugin/datasets/room*.py).

The renderer's layers are built once per session into the session's
SBD_PLUGIN_CACHE (tests/conftest.py). The real-file reader is tested on h5 files with DeepMind's
exact layout (480,000 rows): a chunked gzip file of zeros with a few known
images (about 1.5 MB on disk, read through h5py) and, where the file system
keeps files sparse, a contiguous one (read through the memmap path).
"""
import colorsys
import logging
import os

from disentanglement_lib.data.ground_truth import util as dlib_util
import gin
import h5py
import numpy as np
import pytest

from sbd_plugin.datasets import cache
from sbd_plugin.datasets import registry
from sbd_plugin.datasets import room
from sbd_plugin.datasets import room_factors


@pytest.fixture(scope="session")
def rendered():
  return room.ObjectInRoom(data_path="/nonexistent/3dshapes.h5")


def _render(data, floor=0, wall=5, obj=3, scale=3, shape=0, orientation=7):
  factors = np.array([[floor, wall, obj, scale, shape, orientation]])
  return data.sample_observations_from_factors(factors, None)[0]


def _hue_error(rgb, hue):
  """Circular distance between the hue of `rgb` and `hue`."""
  d = abs(colorsys.rgb_to_hsv(*rgb)[0] - hue) % 1.
  return min(d, 1. - d)


def _all_labels():
  factors = room_factors.index_to_factors(np.arange(room_factors.NUM_IMAGES))
  return np.stack([room_factors.factor_values(i)[factors[:, i]]
                   for i in range(6)], 1)


def _write_h5(path, known, contiguous=False, labels=None):
  """Writes an h5 with DeepMind's layout; `known` maps index -> uint8 image."""
  with h5py.File(path, "w") as f:
    kwargs = {} if contiguous else {"chunks": (1, 64, 64, 3),
                                    "compression": "gzip"}
    images = f.create_dataset("images", shape=(480000, 64, 64, 3),
                              dtype=np.uint8, **kwargs)
    for index, image in known.items():
      images[index] = image
    f.create_dataset("labels", data=_all_labels() if labels is None else labels,
                     **({} if contiguous else {"compression": "gzip"}))


@pytest.fixture(scope="module")
def known_images():
  rng = np.random.RandomState(1)
  return {int(i): rng.randint(0, 256, size=(64, 64, 3)).astype(np.uint8)
          for i in (0, 7, 123456, 479999)}


@pytest.fixture(scope="module")
def chunked_h5(tmp_path_factory, known_images):
  path = str(tmp_path_factory.mktemp("real") / "3dshapes" / "3dshapes.h5")
  os.makedirs(os.path.dirname(path))
  _write_h5(path, known_images)
  return path


# --- Factor structure --------------------------------------------------------


def test_factor_structure_matches_3dshapes(rendered):
  assert rendered.num_factors == 6
  assert rendered.factors_num_values == [10, 10, 10, 8, 4, 15]
  assert rendered.observation_shape == [64, 64, 3]
  assert rendered.factor_names == ["floor_hue", "wall_hue", "object_hue",
                                   "scale", "shape", "orientation"]
  for i in range(3):
    np.testing.assert_allclose(rendered.factor_values(i),
                               [0., .1, .2, .3, .4, .5, .6, .7, .8, .9])
  np.testing.assert_allclose(rendered.factor_values("scale"),
                             np.linspace(0.75, 1.25, 8))
  np.testing.assert_array_equal(rendered.factor_values(4), [0, 1, 2, 3])
  np.testing.assert_allclose(rendered.factor_values(5),
                             np.linspace(-30, 30, 15))
  assert room_factors.SHAPE_NAMES == ("cube", "cylinder", "sphere", "capsule")


def test_index_order_is_orientation_fastest():
  assert room_factors.factors_to_index([[0, 0, 0, 0, 0, 1]])[0] == 1
  assert room_factors.factors_to_index([[0, 0, 0, 0, 1, 0]])[0] == 15
  assert room_factors.factors_to_index([[1, 0, 0, 0, 0, 0]])[0] == 48000
  assert room_factors.factors_to_index([[9, 9, 9, 7, 3, 14]])[0] == 479999
  index = np.random.RandomState(0).randint(480000, size=100)
  np.testing.assert_array_equal(
      room_factors.factors_to_index(room_factors.index_to_factors(index)),
      index)


def test_sample_factors_same_as_dlib_state_space(rendered):
  state_space = dlib_util.SplitDiscreteStateSpace([10, 10, 10, 8, 4, 15],
                                                  list(range(6)))
  ours = rendered.sample_factors(500, np.random.RandomState(3))
  dlibs = state_space.sample_latent_factors(500, np.random.RandomState(3))
  assert ours.dtype == np.int64 and ours.shape == (500, 6)
  np.testing.assert_array_equal(ours, dlibs)


def test_same_seed_same_images(rendered):
  a = rendered.sample_observations(16, np.random.RandomState(5))
  b = rendered.sample_observations(16, np.random.RandomState(5))
  c = rendered.sample_observations(16, np.random.RandomState(6))
  assert a.dtype == np.float32 and a.shape == (16, 64, 64, 3)
  assert a.min() >= 0. and a.max() <= 1.
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_compositing_touched_rows_equals_full_composite(rendered):
  """Skipping the rows a layer leaves alone changes no pixel."""
  impl = rendered._impl  # pylint: disable=protected-access
  f = rendered.sample_factors(500, np.random.RandomState(2))
  fast = rendered.sample_observations_from_factors(f, None)
  full = impl._background[(f[:, 0] * 10 + f[:, 1]) * 15 + f[:, 5]]  # pylint: disable=protected-access
  layer = (f[:, 4] * 8 + f[:, 3]) * 15 + f[:, 5]
  window = full[:, impl._rows]  # pylint: disable=protected-access
  window *= impl._multiplier[layer]  # pylint: disable=protected-access
  window += impl._object_rgb[layer * 10 + f[:, 2]]  # pylint: disable=protected-access
  np.testing.assert_array_equal(fast, full)


def test_rejects_out_of_range_factors(rendered):
  with pytest.raises(ValueError):
    rendered.sample_observations_from_factors(
        np.array([[0, 0, 0, 8, 0, 0]]), None)
  with pytest.raises(ValueError):
    rendered.sample_observations_from_factors(np.zeros((2, 5), int), None)


# --- Index-to-image consistency of the renderer ------------------------------


def _object_mask(data, **kw):
  """Pixels that change with the object's hue: the object itself."""
  a = _render(data, obj=0, **kw)
  b = _render(data, obj=5, **kw)
  return np.abs(a - b).max(-1) > 0.05


def test_floor_hue_changes_only_floor_pixels(rendered):
  images = [_render(rendered, floor=f) for f in range(10)]
  for f, image in enumerate(images):
    # Bottom-left corner: floor, away from the object's shadow.
    assert _hue_error(image[62, 2], f / 10.) < 0.02
  changed = np.abs(images[0] - images[4]).max(-1) > 0.01
  rows = np.nonzero(changed.any(axis=1))[0]
  assert rows.min() >= 38  # below the horizon (floor starts near row 41)
  np.testing.assert_array_equal(images[0][:36], images[4][:36])


def test_wall_hue_changes_wall_pixels(rendered):
  a = _render(rendered, wall=0)
  b = _render(rendered, wall=6)
  assert _hue_error(b[25, 5], 0.6) < 0.02
  np.testing.assert_array_equal(a[:12], b[:12])  # sky
  np.testing.assert_array_equal(a[50:], b[50:])  # floor and object


def test_object_hue_changes_object_pixels_only(rendered):
  for shape in range(4):
    a = _render(rendered, obj=0, shape=shape)
    b = _render(rendered, obj=6, shape=shape)
    changed = np.abs(a - b).max(-1) > 1e-6
    assert 100 < changed.sum() < 1500
    ys, xs = np.nonzero(changed)
    # Centred on the image's column axis, standing on the floor near row 52.
    assert abs(xs.mean() - 31.5) < 3
    assert 50 <= ys.max() <= 56
    # Object pixels take the object's hue; the rest of the image is untouched.
    centre = b[int(np.median(ys)), int(np.median(xs))]
    assert _hue_error(centre, 0.6) < 0.03
    np.testing.assert_array_equal(a[~changed], b[~changed])


def test_scale_grows_object_area(rendered):
  for shape in range(4):
    areas = [_object_mask(rendered, scale=s, shape=shape).sum()
             for s in range(8)]
    assert all(x < y for x, y in zip(areas, areas[1:])), (shape, areas)
    # Area grows roughly with scale squared: (1.25 / 0.75)^2 = 2.8.
    assert 2.2 < areas[-1] / areas[0] < 3.4


def test_shapes_have_distinct_silhouettes(rendered):
  masks = [_object_mask(rendered, shape=s, scale=7) for s in range(4)]
  heights = [np.nonzero(m.any(axis=1))[0].size for m in masks]
  assert heights[3] > 1.4 * heights[2]  # capsule is the tall one
  for i in range(4):
    for j in range(i + 1, 4):
      assert (masks[i] ^ masks[j]).sum() > 30


def test_orientation_moves_room_corner(rendered):
  def wall_row(orientation):
    return _render(rendered, wall=5, floor=0, orientation=orientation)[25]
  front = wall_row(7)
  # At 0 degrees the back wall fills the row with one shade.
  assert np.ptp(front.max(-1)) < 0.02
  # At -30 degrees the darker side wall is right of centre; at +30 left.
  left, right = wall_row(0), wall_row(14)
  assert left[60].max() < 0.8 * left[4].max()
  assert right[4].max() < 0.8 * right[60].max()
  # The cube is seen from a different side, the round objects are not.
  assert not np.array_equal(_object_mask(rendered, orientation=0),
                            _object_mask(rendered, orientation=7))
  np.testing.assert_array_equal(
      _object_mask(rendered, orientation=0, shape=2),
      _object_mask(rendered, orientation=7, shape=2))


def test_shadow_darkens_floor_below_right_of_object(rendered):
  image = _render(rendered, floor=0, shape=2, scale=7)
  floor_value = image[62, 2, 0]
  # Just below and right of the sphere's base the red floor is shadowed.
  patch = image[52:57, 33:42, 0]
  assert patch.min() < 0.6 * floor_value


# --- Cache --------------------------------------------------------------------


def test_corrupt_cache_is_rebuilt_not_read(rendered, session_cache, caplog):
  before = rendered.sample_observations(32, np.random.RandomState(9))
  path = os.path.join(session_cache, "object_in_room", "object_rgb.npy")
  data = bytearray(open(path, "rb").read())
  data[len(data) // 2:len(data) // 2 + 4096] = b"\xff" * 4096
  # Replace the file (new inode) so the session fixture's memory map keeps
  # the good bytes while the cache on disk is corrupt.
  with open(path + ".tmp", "wb") as f:
    f.write(bytes(data))
  os.replace(path + ".tmp", path)
  cache._load_verified.cache_clear()  # pylint: disable=protected-access
  with caplog.at_level(logging.WARNING):
    rebuilt = room.ObjectInRoom(use_real_data=False)
  assert any("checksum mismatch" in r.getMessage() for r in caplog.records)
  after = rebuilt.sample_observations(32, np.random.RandomState(9))
  np.testing.assert_array_equal(before, after)


# --- Real file -----------------------------------------------------------------


def test_missing_real_file_falls_back_and_warns_once(monkeypatch, caplog):
  monkeypatch.setattr(room, "_missing_file_warned", False)
  with caplog.at_level(logging.WARNING):
    first = room.ObjectInRoom(data_path="/nonexistent/3dshapes.h5")
    second = room.ObjectInRoom(data_path="/nonexistent/3dshapes.h5")
  warnings = [r for r in caplog.records if "/nonexistent/3dshapes.h5" in
              r.getMessage()]
  assert len(warnings) == 1
  assert first.source == second.source == "generated"


def test_real_file_is_read_on_demand(chunked_h5, known_images):
  data = room.RealShapes3D(chunked_h5)
  assert not data.is_memory_mapped  # chunked: read through h5py
  # Unsorted, repeated indices come back in the order asked for.
  order = [479999, 0, 7, 0, 123456, 5]
  images = data.images_at(order)
  assert images.dtype == np.float32 and images.shape == (6, 64, 64, 3)
  for image, index in zip(images, order):
    want = known_images.get(index, np.zeros((64, 64, 3), np.uint8))
    np.testing.assert_array_equal(image, want.astype(np.float32) / 255.)
  factors = room_factors.index_to_factors([123456])
  np.testing.assert_array_equal(
      data.sample_observations_from_factors(factors, None)[0],
      known_images[123456] / np.float32(255.))


def test_object_in_room_prefers_real_file(chunked_h5, known_images):
  data = room.ObjectInRoom(data_path=chunked_h5)
  assert data.source == "real"
  np.testing.assert_array_equal(data.images_at([7])[0],
                                known_images[7] / np.float32(255.))


def test_gin_can_force_the_renderer(chunked_h5):
  with gin.unlock_config():
    gin.bind_parameter("object_in_room.data_path", chunked_h5)
    gin.bind_parameter("object_in_room.use_real_data", False)
  try:
    assert room.ObjectInRoom().source == "generated"
  finally:
    gin.clear_config()


def test_registry_serves_shapes3d_from_h5(chunked_h5, known_images,
                                          monkeypatch):
  monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA",
                     os.path.dirname(os.path.dirname(chunked_h5)))
  assert registry.is_plugin_name("shapes3d")
  data = registry.get("shapes3d")
  assert isinstance(data, room.RealShapes3D)
  np.testing.assert_array_equal(data.images_at([0])[0],
                                known_images[0] / np.float32(255.))


def test_contiguous_real_file_is_memory_mapped(tmp_path, known_images):
  path = str(tmp_path / "contiguous.h5")
  _write_h5(path, known_images, contiguous=True)
  if os.stat(path).st_blocks * 512 > (200 << 20):
    os.remove(path)
    pytest.skip("file system does not keep the 5.9 GB test file sparse")
  data = room.RealShapes3D(path)
  assert data.is_memory_mapped
  images = data.images_at([123456, 1, 479999])
  np.testing.assert_array_equal(images[0], known_images[123456] / np.float32(
      255.))
  np.testing.assert_array_equal(images[1], np.zeros((64, 64, 3)))
  np.testing.assert_array_equal(images[2], known_images[479999] / np.float32(
      255.))


@pytest.mark.parametrize("images_shape,images_dtype,labels_shape", [
    ((10, 64, 64, 3), np.uint8, (10, 6)),          # wrong length
    ((480000, 32, 32, 3), np.uint8, (480000, 6)),  # wrong image size
    ((480000, 64, 64, 3), np.float32, (480000, 6)),  # wrong dtype
    ((480000, 64, 64, 3), np.uint8, (480000, 5)),  # wrong labels
])
def test_wrong_layout_names_file_and_expected_layout(
    tmp_path, images_shape, images_dtype, labels_shape):
  path = str(tmp_path / "bad.h5")
  with h5py.File(path, "w") as f:
    f.create_dataset("images", shape=images_shape, dtype=images_dtype,
                     chunks=(1,) + images_shape[1:], compression="gzip")
    f.create_dataset("labels", shape=labels_shape, dtype=np.float64,
                     chunks=True, compression="gzip")
  with pytest.raises(ValueError) as e:
    room.ObjectInRoom(data_path=path)
  assert path in str(e.value)
  assert "`images` uint8 [480000, 64, 64, 3]" in str(e.value)
  assert "`labels` float64 [480000, 6]" in str(e.value)


def test_unreadable_file_names_file_and_expected_layout(tmp_path):
  path = str(tmp_path / "3dshapes.h5")
  with open(path, "wb") as f:
    f.write(b"not an hdf5 file" * 100)
  with pytest.raises(IOError) as e:
    room.RealShapes3D(path)
  assert path in str(e.value) and "uint8 [480000, 64, 64, 3]" in str(e.value)
  missing_labels = str(tmp_path / "no_labels.h5")
  with h5py.File(missing_labels, "w") as f:
    f.create_dataset("images", shape=(480000, 64, 64, 3), dtype=np.uint8,
                     chunks=(1, 64, 64, 3))
  with pytest.raises(IOError) as e:
    room.RealShapes3D(missing_labels)
  assert missing_labels in str(e.value)


def test_images_group_instead_of_dataset_is_a_clear_error(tmp_path):
  path = str(tmp_path / "group.h5")
  with h5py.File(path, "w") as f:
    f.create_group("images")
    f.create_dataset("labels", shape=(480000, 6), dtype=np.float64,
                     chunks=True)
  with pytest.raises(ValueError) as e:
    room.RealShapes3D(path)
  assert "`images` is a Group, not a dataset" in str(e.value)
  assert path in str(e.value) and "uint8 [480000, 64, 64, 3]" in str(e.value)


def test_label_order_is_checked(tmp_path):
  path = str(tmp_path / "shuffled.h5")
  labels = _all_labels()[::-1].copy()
  _write_h5(path, {}, labels=labels)
  with pytest.raises(ValueError) as e:
    room.RealShapes3D(path)
  assert path in str(e.value) and "index order" in str(e.value)
