"""Colored sprites: dSprites geometry recoloured from a box in HSV space.

The paper's main dataset. Masks are DeepMind's dSprites masks, read from the
user's real file when present, otherwise drawn by a rasteriser fitted to real
dSprites frames (see `dsprites_masks`). Colour is a ground-truth factor (hue,
saturation, value bins), so dlib's metrics score it.

Factor order: shape, scale, orientation, posX, posY, hue, saturation, value.
"""
import colorsys

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
    self._sizes = list(raster.DSPRITES_FACTOR_SIZES) + [
        num_hue_bins, num_saturation_bins, num_value_bins]
    # A plain ndarray view: indexing an np.memmap goes through its Python
    # subclass hooks on every call.
    self.masks = np.asarray(self._load_masks())
    # bits[b] = the 8 pixels of packed byte b (most significant bit first).
    bits = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)
    self._bits24 = np.repeat(bits, 3, axis=1).astype(np.float32)  # [256, 24]
    self._colours24 = np.tile(self.colours, (1, 8))  # [colours, 24]
    self._row_origin = raster.row_origin(raster.POSITION_VALUES)

  def _load_masks(self):
    return dsprites_masks.dsprites_masks()

  factor_names = FACTOR_NAMES

  def factor_values(self, i):
    """Returns the values (the grid) of factor i as a numpy array.

    Shapes are 0, 1, 2 (see dsprites_raster.SHAPE_NAMES); orientation is in
    radians; colour factors are bin centres in HSV units.
    """
    grids = [np.arange(3), raster.SCALE_VALUES, raster.ORIENTATION_VALUES,
             raster.POSITION_VALUES, raster.POSITION_VALUES]
    grids += self.colour_values
    return np.array(grids[i])

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

    Deterministic: random_state is unused (colours are bin centres).
    """
    del random_state
    factors = np.asarray(factors, dtype=np.int64)
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
    colour = factors[:, 5:] @ self._colour_strides
    # Aligned, so that TensorFlow takes the batch without copying it.
    out = aligned.zeros((num, raster.IMAGE_SIZE, raster.IMAGE_SIZE, 3))
    # Two same-shape gathers and one product beat a broadcast (8, 3) product.
    out.reshape(-1, 24)[dest] = (self._bits24[flat[nonzero]] *
                                 self._colours24[colour[sample]])
    return out

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
