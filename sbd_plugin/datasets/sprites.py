"""Colored sprites: dSprites geometry recoloured from a box in HSV space.

The paper's main dataset. Masks are DeepMind's dSprites masks, read from the
user's real file when present, otherwise drawn by `render_masks`, a rasteriser
fitted to real dSprites frames (see docs/datasets/sprites.md for the measured
match). Colour is a ground-truth factor (hue, saturation, value bins), so
dlib's metrics score it.

Masks are cached (cache.load_or_build, memory-mapped) as bit-packed windows:
for each of the 737,280 dSprites indices, the 32 rows starting at
`row_origin(posY)`, 64 columns packed into 8 bytes (256 bytes a mask, 189 MB
in all). Every sprite fits in those rows, so nothing is lost.

Factor order: shape, scale, orientation, posX, posY, hue, saturation, value.
"""
import colorsys
import logging
import math
import os
import zipfile

from disentanglement_lib.data.ground_truth import ground_truth_data
import gin.tf
import numpy as np

from sbd_plugin.datasets import aligned
from sbd_plugin.datasets import cache

SHAPE_NAMES = ("square", "ellipse", "heart")
SCALE_VALUES = np.linspace(0.5, 1., 6)
ORIENTATION_VALUES = np.linspace(0., 2 * np.pi, 40)
POSITION_VALUES = np.linspace(0., 1., 32)
DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)
NUM_MASKS = int(np.prod(DSPRITES_FACTOR_SIZES))
FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY", "hue",
                "saturation", "value")
IMAGE_SIZE = 64
WINDOW_ROWS = 32  # Cached rows per mask; sprites extend < 15 px from centre.

REAL_DSPRITES_RELPATH = os.path.join(
    "dsprites", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
REAL_LAYOUT = ("an .npz whose 'imgs' member is a uint8 0/1 array of shape "
               "(737280, 64, 64), indexed in dSprites order (shape 3, scale 6, "
               "orientation 40, posX 32, posY 32; posY fastest)")

# Geometry in pixels at scale 1, fitted to the real frames in dsprites.gif.
# Sprite coordinates: u to the right, w up, origin at the sprite centre.
SQUARE_HALF_SIDE = 9.6  # 10 matches unrotated squares too; 9.6 fits rotated.
ELLIPSE_SEMI_AXES = (12.75, 7.25)  # Long axis horizontal at orientation 0.
# Heart: the union of two "cones", each the convex hull of a lobe disc and
# the tip; lobes up, tip down. Its centroid sits ~1.9 px above the centre.
HEART_LOBE_X = 4.69
HEART_LOBE_Y = 3.95
HEART_LOBE_RADIUS = 5.11
HEART_TIP_Y = -8.70

_MASK_STRIDES = np.array([int(np.prod(DSPRITES_FACTOR_SIZES[i + 1:]))
                          for i in range(5)], dtype=np.int64)
_CACHE_VERSION = "sprites-masks-v1"
_warned_missing_real = False


# ----------------------------------------------------------------------------
# Rasteriser.


def sprite_centre(pos):
  """Returns the sprite centre in pixels for a position value in [0, 1].

  Pixel i covers [i, i + 1), so its centre is i + 0.5; sprite centres span the
  middle half of the image, as in dSprites.
  """
  return 16. + 32. * np.asarray(pos, dtype=np.float64)


def row_origin(pos_y):
  """First image row of a mask's cached window, for position values pos_y.

  The same formula gives a window's first column for position values pos_x.
  """
  return (np.floor(sprite_centre(pos_y)).astype(np.int64) - 16)


def _inside_heart(u, w):
  """Point-in-heart test in sprite coordinates (w up).

  The heart is the union of two mirror-image "cones", each the convex hull of
  a lobe disc and the tip (the disc plus the triangle spanned by the tip and
  the two tangent points). The left cone's part right of the axis lies inside
  the right cone, so testing (|u|, w) against the right cone is exact.
  """
  u = np.abs(u)
  axis_x, axis_y = HEART_LOBE_X, HEART_LOBE_Y - HEART_TIP_Y
  length = math.hypot(axis_x, axis_y)
  sin_half = HEART_LOBE_RADIUS / length
  cos2 = 1. - sin_half ** 2
  tan_half = sin_half / math.sqrt(cos2)
  w_tip = w - HEART_TIP_Y
  along = u * (axis_x / length) + w_tip * (axis_y / length)
  across = np.abs(u * (axis_y / length) - w_tip * (axis_x / length))
  in_cone = (across <= along * tan_half) & (along <= length * cos2)
  in_cone |= ((u - HEART_LOBE_X) ** 2 + (w - HEART_LOBE_Y) ** 2 <=
              HEART_LOBE_RADIUS ** 2)
  return in_cone


def render_masks(shape, scale, orientation, pos_x, pos_y, size=1.):
  """Rasterises dSprites masks into full images; see render_windows.

  Returns:
    Bool array [N, 64, 64].
  """
  windows, first_row, first_col = render_windows(shape, scale, orientation,
                                                 pos_x, pos_y, size)
  num = len(windows)
  offsets = np.arange(WINDOW_ROWS)
  masks = np.zeros((num, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
  masks[np.arange(num)[:, None, None], (first_row[:, None] + offsets)[:, :, None],
        (first_col[:, None] + offsets)[:, None, :]] = windows
  return masks


def render_windows(shape, scale, orientation, pos_x, pos_y, size=1.):
  """Rasterises dSprites masks: a pixel is on when its centre is inside.

  Orientation turns the sprite counter-clockwise on screen about its centre
  (the direction of increasing orientation in the real frames).

  Args:
    shape: Int array [N], 0 square, 1 ellipse, 2 heart.
    scale: Float array [N], dSprites scale values.
    orientation: Float array [N], radians.
    pos_x: Float array [N] in [0, 1]; 0 is the left, column axis.
    pos_y: Float array [N] in [0, 1]; 0 is the top, row axis.
    size: Float, extra size factor (small sprites use < 1).

  Returns:
    (windows bool [N, 32, 32], first_row int [N], first_col int [N]): each
    sprite's 32 x 32 window and where its top-left pixel lies in the image.
  """
  shape = np.asarray(shape)
  num = len(shape)
  # Work in a 32 x 32 window around each centre (sprites reach < 15 px from
  # it), a quarter of the image, then paste the windows into the images.
  pos_x = np.broadcast_to(pos_x, (num,))
  pos_y = np.broadcast_to(pos_y, (num,))
  centre_x, centre_y = sprite_centre(pos_x), sprite_centre(pos_y)
  first_col, first_row = row_origin(pos_x), row_origin(pos_y)
  offsets = np.arange(WINDOW_ROWS)
  dx = (first_col[:, None] + offsets + 0.5 - centre_x[:, None])[:, None, :]
  dy = (first_row[:, None] + offsets + 0.5 - centre_y[:, None])[:, :, None]
  angle = np.broadcast_to(np.asarray(orientation, np.float64), (num,))
  k = np.broadcast_to(np.asarray(scale, np.float64), (num,)) * size
  cos = (np.cos(angle) / k)[:, None, None]
  sin = (np.sin(angle) / k)[:, None, None]
  u = cos * dx - sin * dy
  w = -(sin * dx + cos * dy)  # Image rows grow downwards; w grows upwards.
  windows = np.zeros(u.shape, dtype=bool)
  for value in np.unique(shape):
    sel = np.flatnonzero(shape == value)
    us, ws = u[sel], w[sel]
    if value == 0:
      windows[sel] = ((np.abs(us) <= SQUARE_HALF_SIDE) &
                      (np.abs(ws) <= SQUARE_HALF_SIDE))
    elif value == 1:
      a, b = ELLIPSE_SEMI_AXES
      windows[sel] = (us / a) ** 2 + (ws / b) ** 2 <= 1.
    elif value == 2:
      windows[sel] = _inside_heart(us, ws)
    else:
      raise ValueError("Unknown shape index %r." % value)
  return windows, first_row, first_col


def index_to_factors(indices):
  """Returns dSprites factor indices [N, 5] of flat mask indices [N]."""
  return np.stack(np.unravel_index(np.asarray(indices), DSPRITES_FACTOR_SIZES),
                  axis=1).astype(np.int64)


def render_mask_indices(indices, size=1.):
  """Rasterises masks for flat dSprites indices [N]; bool [N, 64, 64]."""
  f = index_to_factors(indices)
  return render_masks(f[:, 0], SCALE_VALUES[f[:, 1]],
                      ORIENTATION_VALUES[f[:, 2]], POSITION_VALUES[f[:, 3]],
                      POSITION_VALUES[f[:, 4]], size)


# ----------------------------------------------------------------------------
# Compact mask store (bit-packed row windows).


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
  first = row_origin(POSITION_VALUES[pos_y_index])
  rows = first[:, None] + np.arange(WINDOW_ROWS)[None, :]
  windows = masks[np.arange(len(masks))[:, None], rows]
  if windows.sum() != masks.sum():
    raise ValueError("Some sprite pixels lie outside the %d-row window around "
                     "the sprite centre; not dSprites geometry." % WINDOW_ROWS)
  return np.packbits(windows, axis=-1)


def unpack_windows(windows, pos_y_index):
  """Inverse of pack_windows: bool masks [N, 64, 64]."""
  n = len(windows)
  masks = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
  first = row_origin(POSITION_VALUES[pos_y_index])
  rows = first[:, None] + np.arange(WINDOW_ROWS)[None, :]
  masks[np.arange(n)[:, None], rows] = np.unpackbits(
      np.asarray(windows), axis=-1).astype(bool)
  return masks


def build_generated_masks(size=1.):
  """Renders all 737,280 masks as packed windows [N, 32, 8] uint8."""
  out = np.empty((NUM_MASKS, WINDOW_ROWS, IMAGE_SIZE // 8), dtype=np.uint8)
  chunk = 32 * 32  # All positions of one (shape, scale, orientation).
  rows = np.zeros((chunk, WINDOW_ROWS, IMAGE_SIZE), dtype=bool)
  for start in range(0, NUM_MASKS, chunk):
    f = index_to_factors(np.arange(start, start + chunk))
    windows, _, first_col = render_windows(
        f[:, 0], SCALE_VALUES[f[:, 1]], ORIENTATION_VALUES[f[:, 2]],
        POSITION_VALUES[f[:, 3]], POSITION_VALUES[f[:, 4]], size)
    # The window rows are the cached rows; paste columns per column offset.
    rows[:] = False
    for col in np.unique(first_col):
      sel = first_col == col
      rows[sel, :, col:col + WINDOW_ROWS] = windows[sel]
    out[start:start + chunk] = np.packbits(rows, axis=-1)
  return out


def generated_masks(size=1.):
  """Returns the cached generated masks (memory-mapped [N, 32, 8] uint8)."""
  name = "sprites_generated_size%s" % repr(float(size)).replace(".", "p")
  version = "%s:size=%r:geom=%r" % (
      _CACHE_VERSION, float(size),
      (SQUARE_HALF_SIDE, ELLIPSE_SEMI_AXES, HEART_LOBE_X, HEART_LOBE_Y,
       HEART_LOBE_RADIUS, HEART_TIP_Y))
  return cache.load_or_build(
      name, version, lambda: {"masks": build_generated_masks(size)})["masks"]


def real_dsprites_path():
  """Path where dlib (and we) look for DeepMind's dSprites file."""
  return os.path.join(os.environ.get("DISENTANGLEMENT_LIB_DATA", "."),
                      REAL_DSPRITES_RELPATH)


def _layout_error(path, detail):
  return ValueError("Cannot read dSprites file %s: %s. Expected %s." %
                    (path, detail, REAL_LAYOUT))


def iter_real_images(path, chunk=8192, expected_count=NUM_MASKS):
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
      expected = (expected_count, IMAGE_SIZE, IMAGE_SIZE)
      if tuple(shape) != expected or dtype != np.uint8 or fortran:
        raise _layout_error(path, "'imgs' has shape %s, dtype %s%s" % (
            tuple(shape), dtype, ", Fortran order" if fortran else ""))
      image_bytes = IMAGE_SIZE * IMAGE_SIZE
      for start in range(0, expected_count, chunk):
        n = min(chunk, expected_count - start)
        data = f.read(n * image_bytes)
        if len(data) != n * image_bytes:
          raise _layout_error(path, "'imgs' is truncated at image %d" % start)
        yield start, np.frombuffer(data, np.uint8).reshape(n, IMAGE_SIZE,
                                                           IMAGE_SIZE)


def convert_real_masks(path, expected_count=NUM_MASKS):
  """Converts a real dSprites file into packed windows, streaming.

  Peak memory is the packed result (189 MB) plus one chunk.

  Args:
    path: Path of the .npz.
    expected_count: Number of images (NUM_MASKS for the real file).

  Returns:
    Uint8 array [expected_count, 32, 8].
  """
  out = np.empty((expected_count, WINDOW_ROWS, IMAGE_SIZE // 8), np.uint8)
  for start, images in iter_real_images(path, expected_count=expected_count):
    if images.max(initial=0) > 1:
      raise _layout_error(path, "'imgs' holds values other than 0 and 1")
    pos_y = np.arange(start, start + len(images)) % DSPRITES_FACTOR_SIZES[4]
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
  return cache.load_or_build("sprites_real", version,
                             lambda: {"masks": convert_real_masks(path)})[
                                 "masks"]


def dsprites_masks():
  """Real dSprites masks if the file is present, else generated ones."""
  global _warned_missing_real
  path = real_dsprites_path()
  if os.path.exists(path):
    return real_masks(path)
  if not _warned_missing_real:
    _warned_missing_real = True
    logging.warning("dSprites file %s not found; using the built-in dSprites "
                    "renderer for colored sprites.", path)
  return generated_masks()


# ----------------------------------------------------------------------------
# Colours.


def bin_centres(value_range, num_bins):
  """Centres of num_bins equal bins over value_range = (low, high)."""
  low, high = value_range
  return low + (np.arange(num_bins) + 0.5) * (high - low) / num_bins


# ----------------------------------------------------------------------------
# Datasets.


@gin.configurable("colored_sprites", denylist=[])
class ColoredSprites(ground_truth_data.GroundTruthData):
  """dSprites recoloured per sample; colour is a ground-truth factor.

  Factors (index: name, number of values):
    0 shape 3, 1 scale 6, 2 orientation 40, 3 posX 32, 4 posY 32,
    5 hue num_hue_bins, 6 saturation num_saturation_bins,
    7 value num_value_bins.
  A sample's colour is the centre of its (hue, saturation, value) bin, so an
  observation is a deterministic function of its factors (dlib's metrics
  render the same factors more than once and expect the same image).
  """

  def __init__(self, hue_range=(0., 1.), saturation_range=(0.5, 1.),
               value_range=(0.5, 1.), num_hue_bins=4, num_saturation_bins=4,
               num_value_bins=4):
    """Initialises the dataset.

    Args:
      hue_range: (low, high) hue in [0, 1]; hue wraps around at 1.
      saturation_range: (low, high) saturation in [0, 1].
      value_range: (low, high) value (brightness) in [0, 1].
      num_hue_bins: Number of hue factor values.
      num_saturation_bins: Number of saturation factor values.
      num_value_bins: Number of value factor values.
    """
    self.colour_values = [bin_centres(hue_range, num_hue_bins),
                          bin_centres(saturation_range, num_saturation_bins),
                          bin_centres(value_range, num_value_bins)]
    grid = np.stack(np.meshgrid(*self.colour_values, indexing="ij"), axis=-1)
    grid[..., 0] %= 1.
    # Colour table indexed by the flat (hue, saturation, value) bin.
    self.colours = np.array([colorsys.hsv_to_rgb(*hsv)
                             for hsv in grid.reshape(-1, 3)], np.float32)
    self._colour_strides = np.array(
        [num_saturation_bins * num_value_bins, num_value_bins, 1], np.int64)
    self._sizes = list(DSPRITES_FACTOR_SIZES) + [
        num_hue_bins, num_saturation_bins, num_value_bins]
    # A plain ndarray view: indexing an np.memmap goes through its Python
    # subclass hooks on every call.
    self.masks = np.asarray(self._load_masks())
    # bits[b] = the 8 pixels of packed byte b (most significant bit first).
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)
    self._bits24 = np.repeat(bits, 3, axis=1).astype(np.float32)  # [256, 24]
    self._colours24 = np.tile(self.colours, (1, 8))  # [colours, 24]
    self._row_origin = row_origin(POSITION_VALUES)

  def _load_masks(self):
    return dsprites_masks()

  factor_names = FACTOR_NAMES

  def factor_values(self, i):
    """Returns the values (the grid) of factor i as a numpy array.

    Shapes are 0, 1, 2 (see SHAPE_NAMES); orientation is in radians; colour
    factors are bin centres in HSV units.
    """
    grids = [np.arange(3), SCALE_VALUES, ORIENTATION_VALUES, POSITION_VALUES,
             POSITION_VALUES] + self.colour_values
    return np.array(grids[i])

  @property
  def num_factors(self):
    return len(self._sizes)

  @property
  def factors_num_values(self):
    return list(self._sizes)

  @property
  def observation_shape(self):
    return [IMAGE_SIZE, IMAGE_SIZE, 3]

  def sample_factors(self, num, random_state):
    """Samples factor indices uniformly; int64 [num, 8]."""
    return self._sample_uniform(num, random_state)

  def _sample_uniform(self, num, random_state, allowed=None):
    """Samples each factor uniformly, from allowed[i] where given."""
    sizes = np.array(self._sizes)
    if allowed is not None:
      sizes = np.array([len(a) if a is not None else n
                        for a, n in zip(allowed, self._sizes)])
    # One uniform draw for all factors: far cheaper than a randint per factor.
    factors = (random_state.random_sample((num, len(sizes))) *
               sizes).astype(np.int64)
    if allowed is not None:
      for i, values in enumerate(allowed):
        if values is not None:
          factors[:, i] = np.asarray(values)[factors[:, i]]
    return factors

  def sample_observations_from_factors(self, factors, random_state):
    """Renders factors [N, 8] as float32 images [N, 64, 64, 3] in [0, 1].

    Deterministic: random_state is unused (colours are bin centres).
    """
    del random_state
    factors = np.asarray(factors, dtype=np.int64)
    num = len(factors)
    windows = np.asarray(self.masks[factors[:, :5] @ _MASK_STRIDES])
    # Write only the bytes that hold sprite pixels: a batch is ~94% black,
    # and zeroing the output is far cheaper than a full-image pass.
    flat = windows.reshape(-1)
    nonzero = np.flatnonzero(flat)
    window_bytes = WINDOW_ROWS * IMAGE_SIZE // 8
    sample = nonzero // window_bytes
    # Output position, in units of 8 pixels (one packed byte).
    first = (np.arange(num) * (IMAGE_SIZE * IMAGE_SIZE // 8) +
             self._row_origin[factors[:, 4]] * (IMAGE_SIZE // 8))
    dest = first[sample] + nonzero % window_bytes
    colour = factors[:, 5:] @ self._colour_strides
    # Aligned, so that TensorFlow takes the batch without copying it.
    out = aligned.zeros((num, IMAGE_SIZE, IMAGE_SIZE, 3))
    # Two same-shape gathers and one product beat a broadcast (8, 3) product.
    out.reshape(-1, 24)[dest] = (self._bits24[flat[nonzero]] *
                                 self._colours24[colour[sample]])
    return out

  def masks_from_factors(self, factors):
    """Returns the bool masks [N, 64, 64] of factors [N, >=5]."""
    factors = np.asarray(factors, dtype=np.int64)
    return unpack_windows(self.masks[factors[:, :5] @ _MASK_STRIDES],
                          factors[:, 4])


@gin.configurable("small_colored_sprites", denylist=[])
class SmallColoredSprites(ColoredSprites):
  """Colored sprites drawn at scale_factor times the dSprites size.

  Always rendered by the generator (the real file has no small sprites).
  Colour settings come from the `colored_sprites.*` bindings.
  """

  def __init__(self, scale_factor=0.5):
    """Initialises the dataset.

    Args:
      scale_factor: Sprite size relative to dSprites, in (0, 1].
    """
    if not 0. < scale_factor <= 1.:
      raise ValueError("scale_factor must be in (0, 1], got %r." % scale_factor)
    self.scale_factor = float(scale_factor)
    ColoredSprites.__init__(self)

  def _load_masks(self):
    return generated_masks(self.scale_factor)


def _indices_in_range(values, value_range):
  low, high = value_range
  return np.flatnonzero((values >= low - 1e-9) & (values <= high + 1e-9))


class HoldoutRegion(object):
  """A box in factor space: posX range x posY range x shapes (inclusive)."""

  def __init__(self, posx_range, posy_range, shapes):
    self.posx_range = tuple(posx_range)
    self.posy_range = tuple(posy_range)
    self.shapes = tuple(range(3) if shapes is None else
                        [s if isinstance(s, int) else SHAPE_NAMES.index(s)
                         for s in shapes])
    self.posx_indices = _indices_in_range(POSITION_VALUES, self.posx_range)
    self.posy_indices = _indices_in_range(POSITION_VALUES, self.posy_range)
    if not (len(self.posx_indices) and len(self.posy_indices) and
            len(self.shapes)):
      raise ValueError("Empty holdout region %r." % (self,))
    # Membership tables per factor index: cheaper than np.isin on the
    # training set's sampling path.
    self._in_shape = np.isin(np.arange(len(SHAPE_NAMES)), self.shapes)
    self._in_posx = np.isin(np.arange(len(POSITION_VALUES)), self.posx_indices)
    self._in_posy = np.isin(np.arange(len(POSITION_VALUES)), self.posy_indices)

  def __repr__(self):
    return "HoldoutRegion(posx_range=%r, posy_range=%r, shapes=%r)" % (
        self.posx_range, self.posy_range, self.shapes)

  def contains(self, factors):
    """Bool [N]: whether factor indices [N, >=5] lie inside the region."""
    factors = np.asarray(factors)
    return (self._in_shape[factors[:, 0]] & self._in_posx[factors[:, 3]] &
            self._in_posy[factors[:, 4]])

  def covers_everything(self):
    return (len(self.shapes) == 3 and len(self.posx_indices) == 32 and
            len(self.posy_indices) == 32)


@gin.configurable("holdout_region")
def holdout_region(posx_range=(0.5, 1.), posy_range=(0.5, 1.), shapes=None):
  """The held-out box, shared by the holdout train and test datasets.

  Args:
    posx_range: (low, high) posX values (factor units in [0, 1]), inclusive.
    posy_range: (low, high) posY values, inclusive.
    shapes: Shape indices or names in the region; None means all shapes.

  Returns:
    A HoldoutRegion. The default is the lower-right quadrant of (x, y).
  """
  return HoldoutRegion(posx_range, posy_range, shapes)


def in_holdout_region(factors, region=None):
  """Bool [N]: whether factors [N, 8] lie in `region` (default: gin's)."""
  return (region or holdout_region()).contains(factors)


@gin.configurable("colored_sprites_holdout_train", denylist=[])
class HoldoutTrainColoredSprites(ColoredSprites):
  """Colored sprites whose sample_factors never lands in the holdout region.

  sample_observations_from_factors renders any factors it is given: dlib's
  metrics overwrite factor columns, so they may ask for held-out
  combinations. Colours come from the `colored_sprites.*` bindings.
  """

  def __init__(self):
    self.region = holdout_region()
    if self.region.covers_everything():
      raise ValueError("The holdout region %r leaves nothing to train on." %
                       (self.region,))
    ColoredSprites.__init__(self)

  def sample_factors(self, num, random_state):
    """Uniform over factor space minus the region (vectorised rejection)."""
    factors = self._sample_uniform(num, random_state)
    bad = np.flatnonzero(self.region.contains(factors))
    while len(bad):
      factors[bad] = self._sample_uniform(len(bad), random_state)
      bad = bad[self.region.contains(factors[bad])]
    return factors


@gin.configurable("colored_sprites_holdout_test", denylist=[])
class HoldoutTestColoredSprites(ColoredSprites):
  """Colored sprites whose sample_factors only yields the holdout region.

  See HoldoutTrainColoredSprites for what sample_observations_from_factors
  does with factors outside the region.
  """

  def __init__(self):
    self.region = holdout_region()
    ColoredSprites.__init__(self)

  def sample_factors(self, num, random_state):
    """Uniform over the region, sampled directly."""
    allowed = [None] * len(self._sizes)
    allowed[0] = np.array(self.region.shapes)
    allowed[3] = self.region.posx_indices
    allowed[4] = self.region.posy_indices
    return self._sample_uniform(num, random_state, allowed)


# ----------------------------------------------------------------------------
# Verification against real frames.


def best_match_iou(frames, render_fn=render_masks, position_radius=2):
  """Finds each frame's best-matching mask and returns the IoUs.

  Stage 1 ranks all (shape, scale, orientation) at the image's top-left
  position against the frame shifted to it (integer shifts around the
  centroid); stage 2 renders the best three at the exact grid positions
  within position_radius of the centroid's and keeps the best IoU.

  Args:
    frames: Array [F, 64, 64], nonzero = on (e.g. binarised GIF frames).
    render_fn: Function like render_masks(shape, scale, orientation, pos_x,
      pos_y) -> bool [N, 64, 64]; tests pass deliberately wrong ones.
    position_radius: Grid steps searched around the centroid's position.

  Returns:
    (ious float [F], factors int [F, 5]) of the best matches.
  """
  frames = np.asarray(frames) != 0
  grid = np.stack(np.meshgrid(np.arange(3), np.arange(6), np.arange(40),
                              indexing="ij"), -1).reshape(-1, 3)
  zero = np.zeros(len(grid))
  reference = render_fn(grid[:, 0], SCALE_VALUES[grid[:, 1]],
                        ORIENTATION_VALUES[grid[:, 2]], zero, zero)
  reference = reference[:, :32, :32].reshape(len(grid), -1).astype(np.float32)
  reference_area = reference.sum(1)
  padded = np.pad(frames, ((0, 0), (32, 32), (32, 32)))
  ious = np.zeros(len(frames))
  best = np.zeros((len(frames), 5), dtype=np.int64)
  steps = np.arange(-position_radius, position_radius + 1)
  for f, frame in enumerate(frames):
    rows, cols = np.nonzero(frame)
    if not len(rows):
      continue
    cy, cx = int(round(rows.mean())), int(round(cols.mean()))
    # IoU of every reference against the frame at 7 x 7 integer shifts, as
    # one matrix product (intersections); unions follow from the areas.
    windows = np.stack([
        padded[f, cy + dy + 16:cy + dy + 48, cx + dx + 16:cx + dx + 48]
        for dy in range(-3, 4) for dx in range(-3, 4)]).reshape(49, -1)
    windows = windows.astype(np.float32)
    inter = reference @ windows.T
    union = reference_area[:, None] + windows.sum(1)[None, :] - inter
    scores = (inter / np.maximum(union, 1)).max(1)
    top3 = grid[np.argsort(-scores)[:3]]
    ix = int(np.clip(np.round((cols.mean() + 0.5 - 16) / 32 * 31), 0, 31))
    iy = int(np.clip(np.round((rows.mean() + 0.5 - 16) / 32 * 31), 0, 31))
    xs = np.clip(ix + steps, 0, 31)
    ys = np.clip(iy + steps, 0, 31)
    cand = np.array([(s, sc, o, x, y) for s, sc, o in top3 for x in xs
                     for y in ys])
    masks = render_fn(cand[:, 0], SCALE_VALUES[cand[:, 1]],
                      ORIENTATION_VALUES[cand[:, 2]], POSITION_VALUES[cand[:, 3]],
                      POSITION_VALUES[cand[:, 4]])
    inter = (masks & frame).sum((1, 2))
    union = (masks | frame).sum((1, 2))
    score = inter / np.maximum(union, 1)
    k = int(np.argmax(score))
    ious[f], best[f] = score[k], cand[k]
  return ious, best


def load_gif_masks(path):
  """Decodes a GIF of binary sprites into bool masks [F, H, W]."""
  from PIL import Image, ImageSequence  # pylint: disable=g-import-not-at-top
  with Image.open(path) as image:
    return np.stack([np.asarray(frame.convert("L")) > 127
                     for frame in ImageSequence.Iterator(image)])
