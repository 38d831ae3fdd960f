"""dSprites' factor grid and a rasteriser fitted to DeepMind's frames.

Draws the dSprites masks (square, ellipse, heart at 6 scales, 40 orientations
and 32 x 32 positions on a 64 x 64 image) from the factor values alone; see
docs/datasets/sprites.md for the measured match with the real frames.
Flat dSprites indices follow DeepMind's order (shape, scale, orientation,
posX, posY; posY fastest).
"""
import math

import numpy as np

SHAPE_NAMES = ("square", "ellipse", "heart")
SCALE_VALUES = np.linspace(0.5, 1., 6)
ORIENTATION_VALUES = np.linspace(0., 2 * np.pi, 40)
POSITION_VALUES = np.linspace(0., 1., 32)
DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)
NUM_MASKS = int(np.prod(DSPRITES_FACTOR_SIZES))
IMAGE_SIZE = 64
WINDOW_ROWS = 32  # Window rows around a centre; sprites reach < 15 px from it.

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
# Every fitted constant: part of the version of any cache of rendered masks.
GEOMETRY = (SQUARE_HALF_SIDE, ELLIPSE_SEMI_AXES, HEART_LOBE_X, HEART_LOBE_Y,
            HEART_LOBE_RADIUS, HEART_TIP_Y)

# Strides of the flat dSprites index over DSPRITES_FACTOR_SIZES.
_INDEX_STRIDES = np.array([int(np.prod(DSPRITES_FACTOR_SIZES[i + 1:]))
                           for i in range(5)], dtype=np.int64)


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


def factors_to_index(factors):
  """Returns flat dSprites indices [N] of factor indices [N, >=5] (int64)."""
  return np.asarray(factors)[:, :5] @ _INDEX_STRIDES


def render_mask_indices(indices, size=1.):
  """Rasterises masks for flat dSprites indices [N]; bool [N, 64, 64]."""
  f = index_to_factors(indices)
  return render_masks(f[:, 0], SCALE_VALUES[f[:, 1]],
                      ORIENTATION_VALUES[f[:, 2]], POSITION_VALUES[f[:, 3]],
                      POSITION_VALUES[f[:, 4]], size)
