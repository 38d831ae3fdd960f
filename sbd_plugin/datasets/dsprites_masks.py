"""The dSprites masks colored sprites draw: generated or from the real file.

Masks are cached (cache.load_or_build, memory-mapped) as bit-packed windows:
for each of the 737,280 dSprites indices, the 32 rows starting at
`row_origin(posY)`, 64 columns packed into 8 bytes (256 bytes a mask, 189 MB
in all). Every sprite fits in those rows, so nothing is lost. The masks come
from DeepMind's dSprites file in dlib's data folder when it is present,
otherwise from the rasteriser of `dsprites_raster`.
"""
import logging
import os
import zipfile

import numpy as np

from sbd_plugin.datasets import cache
from sbd_plugin.datasets import data_dir
from sbd_plugin.datasets import dsprites_raster as raster
from sbd_plugin.datasets import sources

REAL_LAYOUT = ("an .npz whose 'imgs' member is a uint8 0/1 array of shape "
               "(737280, 64, 64), indexed in dSprites order (shape 3, scale 6, "
               "orientation 40, posX 32, posY 32; posY fastest)")

_CACHE_VERSION = "sprites-masks-v1"
_warned_missing_real = False


def _empty_windows(count):
  """Returns an uninitialised packed-window array [count, 32, 8] uint8."""
  return np.empty((count, raster.WINDOW_ROWS, raster.IMAGE_SIZE // 8),
                  np.uint8)


def _window_rows(pos_y_index):
  """Image rows [N, 32] of the cached windows of posY indices [N]."""
  first = raster.row_origin(raster.POSITION_VALUES[pos_y_index])
  return first[:, None] + np.arange(raster.WINDOW_ROWS)[None, :]


def pack_windows(masks, pos_y_index):
  """Packs full masks [N, 64, 64] into cached windows [N, 32, 8] uint8.

  Args:
    masks: Array [N, 64, 64], nonzero = on.
    pos_y_index: Int array [N], each mask's posY index.

  Returns:
    Uint8 array [N, 32, 8].

  Raises:
    ValueError: if a mask has pixels outside its window.
  """
  masks = np.asarray(masks) != 0
  windows = masks[np.arange(len(masks))[:, None], _window_rows(pos_y_index)]
  if windows.sum() != masks.sum():
    raise ValueError("Some sprite pixels lie outside the %d-row window around "
                     "the sprite centre; not dSprites geometry." %
                     raster.WINDOW_ROWS)
  return np.packbits(windows, axis=-1)


def unpack_windows(windows, pos_y_index):
  """Inverse of pack_windows: bool masks [N, 64, 64]."""
  n = len(windows)
  masks = np.zeros((n, raster.IMAGE_SIZE, raster.IMAGE_SIZE), dtype=bool)
  masks[np.arange(n)[:, None], _window_rows(pos_y_index)] = np.unpackbits(
      np.asarray(windows), axis=-1).astype(bool)
  return masks


def build_generated_masks(size=1.):
  """Renders all 737,280 masks as packed windows [N, 32, 8] uint8."""
  out = _empty_windows(raster.NUM_MASKS)
  chunk = 32 * 32  # All positions of one (shape, scale, orientation).
  rows = np.zeros((chunk, raster.WINDOW_ROWS, raster.IMAGE_SIZE), dtype=bool)
  for start in range(0, raster.NUM_MASKS, chunk):
    f = raster.index_to_factors(np.arange(start, start + chunk))
    windows, _, first_col = raster.render_windows(
        f[:, 0], raster.SCALE_VALUES[f[:, 1]],
        raster.ORIENTATION_VALUES[f[:, 2]], raster.POSITION_VALUES[f[:, 3]],
        raster.POSITION_VALUES[f[:, 4]], size)
    # The window rows are the cached rows; paste columns per column offset.
    rows[:] = False
    for col in np.unique(first_col):
      sel = first_col == col
      rows[sel, :, col:col + raster.WINDOW_ROWS] = windows[sel]
    out[start:start + chunk] = np.packbits(rows, axis=-1)
  return out


def generated_masks(size=1.):
  """Returns the cached generated masks (memory-mapped [N, 32, 8] uint8)."""
  name = "sprites_generated_size%s" % repr(float(size)).replace(".", "p")
  version = "%s:size=%r:geom=%r" % (_CACHE_VERSION, float(size),
                                    raster.GEOMETRY)
  masks = cache.load_or_build(
      name, version, lambda: {"masks": build_generated_masks(size)})["masks"]
  sources.record_generated("dSprites masks", raster.__name__, name, version)
  return masks


def _layout_error(path, detail):
  return ValueError("Cannot read dSprites file %s: %s. Expected %s." %
                    (path, detail, REAL_LAYOUT))


def iter_real_images(path, chunk=8192, expected_count=raster.NUM_MASKS):
  """Streams `imgs` from a dSprites .npz without loading the 3 GB array.

  Args:
    path: Path of the .npz.
    chunk: Number of images per yielded block.
    expected_count: Number of images the file must hold (tests use fewer).

  Yields:
    (start index, uint8 array [n, 64, 64]).

  Raises:
    ValueError: naming the file and the expected layout, if unreadable or
      wrongly shaped.
  """
  try:
    archive = zipfile.ZipFile(path)
  except (OSError, zipfile.BadZipFile) as e:
    raise _layout_error(path, "not a readable .npz (%s)" % e) from e
  with archive:
    if "imgs.npy" not in archive.namelist():
      raise _layout_error(path, "no 'imgs' member (members: %s)" %
                          ", ".join(archive.namelist()))
    with archive.open("imgs.npy") as f:
      try:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)  # pylint: disable=protected-access
      except ValueError as e:
        raise _layout_error(path, "'imgs' is not a .npy array (%s)" % e) from e
      expected = (expected_count, raster.IMAGE_SIZE, raster.IMAGE_SIZE)
      if tuple(shape) != expected or dtype != np.uint8 or fortran:
        raise _layout_error(path, "'imgs' has shape %s, dtype %s%s" % (
            tuple(shape), dtype, ", Fortran order" if fortran else ""))
      image_bytes = raster.IMAGE_SIZE * raster.IMAGE_SIZE
      for start in range(0, expected_count, chunk):
        n = min(chunk, expected_count - start)
        data = f.read(n * image_bytes)
        if len(data) != n * image_bytes:
          raise _layout_error(path, "'imgs' is truncated at image %d" % start)
        yield start, np.frombuffer(data, np.uint8).reshape(
            n, raster.IMAGE_SIZE, raster.IMAGE_SIZE)


def convert_real_masks(path, expected_count=raster.NUM_MASKS):
  """Converts a real dSprites file into packed windows, streaming.

  Peak memory is the packed result (189 MB) plus one chunk.

  Args:
    path: Path of the .npz.
    expected_count: Number of images (raster.NUM_MASKS for the real file).

  Returns:
    Uint8 array [expected_count, 32, 8].
  """
  out = _empty_windows(expected_count)
  for start, images in iter_real_images(path, expected_count=expected_count):
    if images.max(initial=0) > 1:
      raise _layout_error(path, "'imgs' holds values other than 0 and 1")
    pos_y = (np.arange(start, start + len(images)) %
             raster.DSPRITES_FACTOR_SIZES[4])
    try:
      out[start:start + len(images)] = pack_windows(images, pos_y)
    except ValueError as e:
      raise _layout_error(path, str(e)) from e
  return out


def real_masks(path):
  """Returns the cached masks of the real file (memory-mapped)."""
  stat = os.stat(path)
  version = "%s:real:%s:%d:%d" % (_CACHE_VERSION, os.path.abspath(path),
                                  stat.st_size, stat.st_mtime_ns)
  masks = cache.load_or_build("sprites_real", version,
                              lambda: {"masks": convert_real_masks(path)})[
                                  "masks"]
  sources.record_file("dSprites masks", path)
  return masks


def dsprites_masks():
  """Real dSprites masks if the file is present, else generated ones."""
  global _warned_missing_real
  path = data_dir.path(data_dir.DSPRITES_NPZ)
  if os.path.exists(path):
    return real_masks(path)
  if not _warned_missing_real:
    _warned_missing_real = True
    logging.warning("dSprites file %s not found; using the built-in dSprites "
                    "renderer for colored sprites.", path)
  return generated_masks()

