"""Held-out colored sprites: a box of factor space training never sees.

`holdout_region` (gin) defines the box, by default the lower-right quadrant of
(posX, posY) for all shapes; `colored_sprites_holdout_train` samples
everything but the box and `colored_sprites_holdout_test` only the box. Both
render any factors they are given, as dlib's metrics need.
"""
import gin.tf
import numpy as np

from sbd_plugin.datasets import colored_sprites
from sbd_plugin.datasets import dsprites_raster as raster


def _indices_in_range(values, value_range):
  low, high = value_range
  return np.flatnonzero((values >= low - 1e-9) & (values <= high + 1e-9))


class HoldoutRegion(object):
  """A box in factor space: posX range x posY range x shapes (inclusive)."""

  def __init__(self, posx_range, posy_range, shapes):
    self.posx_range = tuple(posx_range)
    self.posy_range = tuple(posy_range)
    self.shapes = tuple(range(3) if shapes is None else
                        [s if isinstance(s, int) else
                         raster.SHAPE_NAMES.index(s) for s in shapes])
    positions = raster.POSITION_VALUES
    self.posx_indices = _indices_in_range(positions, self.posx_range)
    self.posy_indices = _indices_in_range(positions, self.posy_range)
    if not (len(self.posx_indices) and len(self.posy_indices) and
            len(self.shapes)):
      raise ValueError("Empty holdout region %r." % (self,))
    # Membership tables per factor index: cheaper than np.isin on the
    # training set's sampling path.
    self._in_shape = np.isin(np.arange(len(raster.SHAPE_NAMES)), self.shapes)
    self._in_posx = np.isin(np.arange(len(positions)), self.posx_indices)
    self._in_posy = np.isin(np.arange(len(positions)), self.posy_indices)

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
class HoldoutTrainColoredSprites(colored_sprites.ColoredSprites):
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
    colored_sprites.ColoredSprites.__init__(self)

  def sample_factors(self, num, random_state):
    """Uniform over factor space minus the region (vectorised rejection)."""
    factors = self._sample_uniform(num, random_state)
    bad = np.flatnonzero(self.region.contains(factors))
    while len(bad):
      factors[bad] = self._sample_uniform(len(bad), random_state)
      bad = bad[self.region.contains(factors[bad])]
    return factors


@gin.configurable("colored_sprites_holdout_test", denylist=[])
class HoldoutTestColoredSprites(colored_sprites.ColoredSprites):
  """Colored sprites whose sample_factors only yields the holdout region.

  See HoldoutTrainColoredSprites for what sample_observations_from_factors
  does with factors outside the region.
  """

  def __init__(self):
    self.region = holdout_region()
    colored_sprites.ColoredSprites.__init__(self)

  def sample_factors(self, num, random_state):
    """Uniform over the region, sampled directly."""
    allowed = [None] * len(self._sizes)
    allowed[0] = np.array(self.region.shapes)
    allowed[3] = self.region.posx_indices
    allowed[4] = self.region.posy_indices
    return self._sample_uniform(num, random_state, allowed)
