"""Colored sprites: dSprites geometry recoloured from a box in HSV space.

The paper's main dataset. Masks are DeepMind's dSprites masks, read from the
user's real file when present, otherwise drawn by a rasteriser fitted to real
dSprites frames (see `dsprites_masks`). Colour is drawn per sample uniformly
from the HSV box of the sample's (hue, saturation, value) bin: training sees
the paper's continuous colour, while the ground-truth factors dlib's metrics
score are the bin indices.

Factor order: shape, scale, orientation, posX, posY, hue, saturation, value.
"""
from disentanglement_lib.data.ground_truth import ground_truth_data
import gin.tf
import numpy as np

from sbd_plugin.datasets import aligned
from sbd_plugin.datasets import dsprites_masks
from sbd_plugin.datasets import dsprites_raster as raster

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY", "hue",
                "saturation", "value")


def bin_centres(value_range, num_bins):
  """Centres of num_bins equal bins over value_range = (low, high)."""
  low, high = value_range
  return low + (np.arange(num_bins) + 0.5) * (high - low) / num_bins


# Per RGB channel: centre c, slope g and offset o of the hue term
# g * |h - c| + o, which clipped to [0, 1] is 1 - (channel at s = v = 1).
_HUE_CENTRES = np.array([3., 2., 4.]) / 6.
_HUE_SLOPES = np.array([-6., 6., 6.])
_HUE_OFFSETS = np.array([2., -1., -1.])


def hsv_to_rgb(hsv, repeat=1):
  """Converts colours [N, 3] from HSV to RGB, all in [0, 1] (vectorised).

  The same colours as colorsys.hsv_to_rgb (to float32 rounding), from the
  closed form channel = v - v * s * clip(g * |h - c| + o, 0, 1) (constants
  _HUE_*). It runs once per sampled chunk, hence a dozen small in-place
  array operations: matplotlib's takes several times longer on 64 colours.

  Args:
    hsv: Float array [N, 3]; hue is taken modulo 1.
    repeat: Number of copies of (r, g, b) along the last axis; the renderer
      asks for 8 (one per pixel of a packed byte).

  Returns:
    Float32 array [N, 3 * repeat].
  """
  hsv = np.asarray(hsv, np.float64)
  k = np.subtract(np.remainder(hsv[:, :1], 1.), _HUE_CENTRES)
  np.abs(k, out=k)
  k *= _HUE_SLOPES
  k += _HUE_OFFSETS
  np.minimum(k, 1., out=k)
  np.maximum(k, 0., out=k)
  value = hsv[:, 2:]
  k *= value * hsv[:, 1:2]
  rgb = np.subtract(value, k, dtype=np.float32)
  if repeat == 1:
    return rgb
  return np.repeat(rgb[:, None], repeat, axis=1).reshape(len(rgb), 3 * repeat)


@gin.configurable("colored_sprites", denylist=[])
class ColoredSprites(ground_truth_data.GroundTruthData):
  """dSprites recoloured per sample; the colour's bin is a ground-truth factor.

  Factors (index: name, number of values):
    0 shape 3, 1 scale 6, 2 orientation 40, 3 posX 32, 4 posY 32,
    5 hue num_hue_bins, 6 saturation num_saturation_bins,
    7 value num_value_bins.
  A sample's colour is drawn uniformly from the HSV box of its (hue,
  saturation, value) bin, with the random_state given to
  sample_observations_from_factors (as dlib's ColorDSprites draws its
  colour): the same factors and random_state give the same image, and the
  within-bin colour is a nuisance the colour factors' labels do not see.
  Without a random_state (None) the colour is the bin centre.
  """

  def __init__(self, hue_range=(0., 1.), saturation_range=(0.5, 1.),
               value_range=(0.5, 1.), num_hue_bins=4, num_saturation_bins=4,
               num_value_bins=4):
    """Initialises the dataset.

    Args:
      hue_range: (low, high) hue; hue wraps around at 1, so the range (and
        a bin) may cross it, e.g. (0.875, 1.875).
      saturation_range: (low, high) saturation in [0, 1].
      value_range: (low, high) value (brightness) in [0, 1].
      num_hue_bins: Number of hue factor values.
      num_saturation_bins: Number of saturation factor values.
      num_value_bins: Number of value factor values.
    """
    ranges = (hue_range, saturation_range, value_range)
    bins = (num_hue_bins, num_saturation_bins, num_value_bins)
    self.colour_values = [bin_centres(r, n) for r, n in zip(ranges, bins)]
    # Bin j of colour channel c: [low_c + j width_c, low_c + (j + 1) width_c).
    self._colour_low = np.array([r[0] for r in ranges], np.float64)
    self._colour_width = np.array([(r[1] - r[0]) / n
                                   for r, n in zip(ranges, bins)], np.float64)
    self._sizes = list(raster.DSPRITES_FACTOR_SIZES) + [
        num_hue_bins, num_saturation_bins, num_value_bins]
    # A plain ndarray view: indexing an np.memmap goes through its Python
    # subclass hooks on every call.
    self.masks = np.asarray(self._load_masks())
    # bits[b] = the 8 pixels of packed byte b (most significant bit first).
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)
    self._bits24 = np.repeat(bits, 3, axis=1).astype(np.float32)  # [256, 24]
    self._row_origin = raster.row_origin(raster.POSITION_VALUES)

  def _load_masks(self):
    return dsprites_masks.dsprites_masks()

  factor_names = FACTOR_NAMES

  def factor_values(self, i):
    """Returns the values (the grid) of factor i as a numpy array.

    Shapes are 0, 1, 2 (see dsprites_raster.SHAPE_NAMES); orientation is in
    radians; colour factors are bin centres in HSV units (a sample's colour
    lies anywhere in its bin, see colour_boxes).
    """
    grids = [np.arange(3), raster.SCALE_VALUES, raster.ORIENTATION_VALUES,
             raster.POSITION_VALUES, raster.POSITION_VALUES]
    grids += self.colour_values
    return np.array(grids[i])

  def colour_boxes(self, colour_bins):
    """Returns the HSV boxes of (hue, saturation, value) bins.

    Args:
      colour_bins: Int array [N, 3], bin indices (factors 5, 6, 7).

    Returns:
      (low, high): float arrays [N, 3] in HSV units; a colour of the bin has
      low <= hsv < high. Hue is not reduced modulo 1, so a bin that spans
      hue 1 -> 0 has high > 1 (or low < 0).
    """
    low = self._colour_low + np.asarray(colour_bins) * self._colour_width
    return low, low + self._colour_width

  def sample_colours(self, colour_bins, random_state, repeat=1):
    """Draws one RGB colour per row of colour_bins, uniform in its HSV box.

    Args:
      colour_bins: Int array [N, 3], bin indices (factors 5, 6, 7).
      random_state: numpy RandomState (3 uniform draws a row); None gives
        the bin centres.
      repeat: Copies of each colour along the last axis (see hsv_to_rgb).

    Returns:
      Float32 array [N, 3 * repeat] in [0, 1].
    """
    colour_bins = np.asarray(colour_bins)
    if random_state is None:
      hsv = np.full(colour_bins.shape, 0.5)
    else:
      hsv = random_state.random_sample(colour_bins.shape)
    # In place: this runs once per sampled chunk, on [N, 3] arrays.
    hsv += colour_bins
    hsv *= self._colour_width
    hsv += self._colour_low
    # hsv_to_rgb takes hue modulo 1: a bin may span hue 1 -> 0.
    return hsv_to_rgb(hsv, repeat)

  @property
  def num_factors(self):
    return len(self._sizes)

  @property
  def factors_num_values(self):
    return list(self._sizes)

  @property
  def observation_shape(self):
    return [raster.IMAGE_SIZE, raster.IMAGE_SIZE, 3]

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

    Args:
      factors: Int array [N, 8], factor indices.
      random_state: numpy RandomState drawing each sprite's colour inside
        its HSV bin (3 uniform draws a sample); the same state gives the
        same images. None renders bin-centre colours (deterministic, e.g.
        for figures).

    Returns:
      Float32 array [N, 64, 64, 3].
    """
    factors = np.asarray(factors, dtype=np.int64)
    # [N, 24]: the sample's colour for each of the 8 pixels of a byte.
    colours24 = self.sample_colours(factors[:, 5:], random_state, repeat=8)
    num = len(factors)
    windows = np.asarray(self.masks[raster.factors_to_index(factors)])
    # Write only the bytes that hold sprite pixels: a batch is ~94% black,
    # and zeroing the output is far cheaper than a full-image pass.
    flat = windows.reshape(-1)
    nonzero = np.flatnonzero(flat)
    window_bytes = raster.WINDOW_ROWS * raster.IMAGE_SIZE // 8
    sample = nonzero // window_bytes
    # Output position, in units of 8 pixels (one packed byte).
    first = (np.arange(num) * (raster.IMAGE_SIZE * raster.IMAGE_SIZE // 8) +
             self._row_origin[factors[:, 4]] * (raster.IMAGE_SIZE // 8))
    dest = first[sample] + nonzero % window_bytes
    # Aligned, so that TensorFlow takes the batch without copying it.
    out = aligned.zeros((num, raster.IMAGE_SIZE, raster.IMAGE_SIZE, 3))
    # Two same-shape gathers and one product beat a broadcast (8, 3) product.
    out.reshape(-1, 24)[dest] = (self._bits24[flat[nonzero]] *
                                 colours24[sample])
    return out

  def fixed_observations_from_factors(self, factors):
    """Renders factors [N, 8] with every colour at its bin's centre.

    The deterministic path for figures that vary some factors and claim the
    others fixed: sample_observations_from_factors with a random state gives
    each image another colour inside its bin, so two images with the same
    colour factors differ in colour. Here images differ only where their
    factors do.

    Args:
      factors: Int array [N, 8], factor indices.

    Returns:
      Float32 array [N, 64, 64, 3].
    """
    return self.sample_observations_from_factors(factors, None)

  def masks_from_factors(self, factors):
    """Returns the bool masks [N, 64, 64] of factors [N, >=5]."""
    factors = np.asarray(factors, dtype=np.int64)
    return dsprites_masks.unpack_windows(
        self.masks[raster.factors_to_index(factors)], factors[:, 4])


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
    return dsprites_masks.generated_masks(self.scale_factor)
