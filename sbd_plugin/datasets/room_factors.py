"""The factor structure of DeepMind's 3dshapes (3D Object-in-Room).

480,000 RGB 64x64 images, index order as listed, orientation fastest:

  0 floor_hue    10 values 0.0, 0.1, ..., 0.9
  1 wall_hue     10 values 0.0, 0.1, ..., 0.9
  2 object_hue   10 values 0.0, 0.1, ..., 0.9
  3 scale         8 values linspace(0.75, 1.25, 8)
  4 shape         4 values cube, cylinder, sphere, capsule (labels 0..3)
  5 orientation  15 values linspace(-30, 30, 15) degrees

Shared by the real-file reader and the renderer, so that both give the same
factors, label values and index order.
"""
import numpy as np

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape",
                "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
NUM_IMAGES = int(np.prod(FACTOR_SIZES))
IMAGE_SHAPE = (64, 64, 3)
# Strides of the row-major index over FACTOR_SIZES (orientation fastest).
_FACTOR_BASES = np.array(
    [int(np.prod(FACTOR_SIZES[i + 1:])) for i in range(len(FACTOR_SIZES))],
    dtype=np.int64)


def factor_values(i):
  """Returns the label values of factor `i` as in DeepMind's `labels`.

  Args:
    i: Integer factor position (see FACTOR_NAMES) or a factor name.

  Returns:
    float64 numpy array with FACTOR_SIZES[i] entries.
  """
  if isinstance(i, str):
    i = FACTOR_NAMES.index(i)
  if i < 3:
    return np.arange(10) / 10.
  if i == 3:
    return np.linspace(0.75, 1.25, 8)
  if i == 4:
    return np.arange(4, dtype=np.float64)
  if i == 5:
    return np.linspace(-30., 30., 15)
  raise IndexError("Factor index %r out of range [0, 6)." % i)


def factors_to_index(factors):
  """Returns the flat image index (int64 [num]) of factor indices [num, 6]."""
  return np.asarray(factors, dtype=np.int64).dot(_FACTOR_BASES)


def index_to_factors(index):
  """Returns factor indices (int64 [num, 6]) of flat image indices [num]."""
  index = np.asarray(index, dtype=np.int64)
  return (index[:, None] // _FACTOR_BASES) % np.array(FACTOR_SIZES)
