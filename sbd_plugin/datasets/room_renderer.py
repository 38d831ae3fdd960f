"""A procedural look-alike of 3dshapes: a small numpy ray caster.

The renderer does not draw 480,000 images; an image is linear in its three
colours, so it is stored as layers that are composited per batch:

  background[floor_hue, wall_hue, orientation]          1,500 full images
  multiplier[shape, scale, orientation]                 (1 - alpha) * shadow
  object_rgb[shape, scale, orientation, object_hue]     alpha * shaded colour

  image = background * multiplier + object_rgb    (inside the object window)

The layers (about 310 MB of float32) are built once into the verified on-disk
cache of `sbd_plugin.datasets.cache` and memory-mapped afterwards; `room`
composites them.
"""
import colorsys

import numpy as np

from sbd_plugin.datasets import cache
from sbd_plugin.datasets import room_factors
from sbd_plugin.datasets import sources

# Camera and room fitted to the real frames (see docs/datasets/room.md).
_ROOM_HALF_SIZE = 6.
_WALL_HEIGHT = 2.9
_FOV_Y_DEG = 40.
_CAMERA_DISTANCE = 4.5
_CAMERA_HEIGHT = 1.06
_SKY_RGB = np.array([153., 226., 249.]) / 255.
_SIDE_WALL_SHADE = 0.72
# Core of the cast shadow: the real frames' red floor drops to ~84/255 there
# (the 0.56 in the reference notes averages in the soft edge).
_SHADOW_SHADE = 0.3
# Light directions in camera coordinates (x right, y up, z forward), pointing
# towards the light. The shading light is up-left-front; the shadow light
# comes from up-left-behind so the shadow falls right and towards the camera,
# as in the real frames.
_SHADE_LIGHT = np.array([-0.55, 0.65, -0.55])
_SHADOW_LIGHT = np.array([-0.3, 1.0, 0.3])
_AMBIENT = 0.72
_DIFFUSE = 0.4
_SPECULAR = 0.12
_SHININESS = 4.
_SUPERSAMPLING = 4
_RENDER_VERSION = "room-v7"


def _hsv_colours():
  """RGB of HSV(h, 1, 1) for the ten hues, float64 [10, 3]."""
  return np.array([colorsys.hsv_to_rgb(h, 1., 1.)
                   for h in room_factors.factor_values(0)])


def _camera(orientation_deg):
  """Returns camera origin and (right, up, forward) axes in world space."""
  # The camera orbits the object by minus the orientation angle: at -30
  # degrees the room corner is right of centre, as in DeepMind's frames.
  a = np.deg2rad(-orientation_deg)
  forward = np.array([np.sin(a), 0., np.cos(a)])
  right = np.array([np.cos(a), 0., -np.sin(a)])
  up = np.array([0., 1., 0.])
  origin = -_CAMERA_DISTANCE * forward + _CAMERA_HEIGHT * up
  return origin, right, up, forward


def _rays(orientation_deg, size):
  """Unit ray directions [size*size, 3] through sub-pixel centres."""
  origin, right, up, forward = _camera(orientation_deg)
  focal = (size / 2.) / np.tan(np.deg2rad(_FOV_Y_DEG) / 2.)
  c = np.arange(size) + 0.5 - size / 2.
  y, x = np.meshgrid(c, c, indexing="ij")
  d = (x.reshape(-1, 1) * right - y.reshape(-1, 1) * up + focal * forward)
  return origin, d / np.linalg.norm(d, axis=1, keepdims=True)


def _downsample(a, factor):
  """Box filter: [H*f, W*f, ...] -> [H, W, ...] (the anti-aliasing)."""
  h, w = a.shape[0] // factor, a.shape[1] // factor
  return a.reshape((h, factor, w, factor) + a.shape[2:]).mean(axis=(1, 3))


def _shape_dims(shape, scale):
  """World size of an object: (radius, height) or half-edge for the cube."""
  if shape == 0:
    return 1.07 * scale / 2., 1.07 * scale
  if shape == 1:
    return 1.1 * scale / 2., 1.1 * scale
  if shape == 2:
    # The README fit says 1.1; the real frames show a ~10% larger sphere next
    # to a cube of the same scale.
    return 1.22 * scale / 2., 1.22 * scale
  return 0.95 * scale / 2., 1.9 * scale


def _hit_sphere(o, d, centre, r):
  oc = o - centre
  b = np.einsum("ij,ij->i", oc, d) if oc.ndim == 2 else d.dot(oc)
  c = np.einsum("ij,ij->i", oc, oc) if oc.ndim == 2 else oc.dot(oc)
  disc = b * b - c + r * r
  t = -b - np.sqrt(np.maximum(disc, 0.))
  t = np.where((disc > 0) & (t > 1e-6), t, np.inf)
  return t


def _hit_cylinder_side(o, d, r, y0, y1):
  ox, oz = (o[..., 0], o[..., 2])
  dx, dz = d[:, 0], d[:, 2]
  a = dx * dx + dz * dz
  b = ox * dx + oz * dz
  c = ox * ox + oz * oz - r * r
  disc = b * b - a * c
  with np.errstate(divide="ignore", invalid="ignore"):
    t = (-b - np.sqrt(np.maximum(disc, 0.))) / a
  y = o[..., 1] + t * d[:, 1]
  ok = (disc > 0) & (a > 1e-12) & (t > 1e-6) & (y >= y0) & (y <= y1)
  return np.where(ok, t, np.inf)


def _hit_cap(o, d, r, y):
  with np.errstate(divide="ignore", invalid="ignore"):
    t = (y - o[..., 1]) / d[:, 1]
  p = o + t[:, None] * d
  ok = (t > 1e-6) & (p[:, 0] ** 2 + p[:, 2] ** 2 <= r * r)
  return np.where(ok, t, np.inf)


def _hit_object(o, d, shape, scale):
  """Ray-object intersection in world space (object centred at the origin).

  Args:
    o: Ray origin(s), [3] or [N, 3].
    d: Unit directions [N, 3].
    shape: Shape index (0 cube, 1 cylinder, 2 sphere, 3 capsule).
    scale: Scale value.

  Returns:
    (t [N] with inf for misses, normals [N, 3]).
  """
  r, h = _shape_dims(shape, scale)
  o = np.asarray(o, dtype=np.float64)
  n = d.shape[0]
  if shape == 0:
    lo = np.array([-r, 0., -r])
    hi = np.array([r, h, r])
    with np.errstate(divide="ignore", invalid="ignore"):
      t0 = (lo - o) / d
      t1 = (hi - o) / d
    tmin = np.minimum(t0, t1)
    tmax = np.maximum(t0, t1)
    t_near = np.nanmax(tmin, axis=1)
    t_far = np.nanmin(tmax, axis=1)
    hit = (t_near <= t_far) & (t_near > 1e-6)
    t = np.where(hit, t_near, np.inf)
    axis = np.nanargmax(tmin, axis=1)
    normal = np.zeros((n, 3))
    normal[np.arange(n), axis] = -np.sign(d[np.arange(n), axis])
    return t, normal
  if shape == 2:
    centre = np.array([0., r, 0.])
    t = _hit_sphere(o, d, centre, r)
    p = o + np.where(np.isfinite(t), t, 0.)[:, None] * d
    return t, (p - centre) / r
  if shape == 1:
    t_side = _hit_cylinder_side(o, d, r, 0., h)
    t_top = _hit_cap(o, d, r, h)
    t = np.minimum(t_side, t_top)
    p = o + np.where(np.isfinite(t), t, 0.)[:, None] * d
    side = np.stack([p[:, 0], np.zeros(n), p[:, 2]], 1) / r
    normal = np.where((t_top <= t_side)[:, None], [0., 1., 0.], side)
    return t, normal
  # Capsule: a cylinder between two hemispheres.
  c0 = np.array([0., r, 0.])
  c1 = np.array([0., h - r, 0.])
  t_side = _hit_cylinder_side(o, d, r, r, h - r)
  t_lo = _hit_sphere(o, d, c0, r)
  t_hi = _hit_sphere(o, d, c1, r)
  t = np.minimum(t_side, np.minimum(t_lo, t_hi))
  p = o + np.where(np.isfinite(t), t, 0.)[:, None] * d
  side = np.stack([p[:, 0], np.zeros(n), p[:, 2]], 1) / r
  normal = np.where((t == t_side)[:, None], side,
                    np.where((t == t_lo)[:, None], (p - c0) / r,
                             (p - c1) / r))
  return t, normal


def _floor_shade(size):
  """Screen-space floor darkening towards the right, strongest far away."""
  c = (np.arange(size) + 0.5) * 64. / size
  rows, cols = np.meshgrid(c, c, indexing="ij")
  u = np.clip((cols - 38.) / 26., 0., 1.)
  v = 0.13 + 0.32 * np.exp(-np.maximum(rows - 41., 0.) / 2.5)
  return 1. - u * v


def _render_background_coverage(orientation_deg, size):
  """Per-subpixel weights of floor, wall colour and sky for one orientation.

  Returns:
    floor [size, size], wall [size, size] (colour multipliers incl. shading),
    sky [size, size] coverage, floor points [size*size, 3] (nan if not floor).
  """
  origin, d = _rays(orientation_deg, size)
  with np.errstate(divide="ignore", invalid="ignore"):
    t_floor = np.where(d[:, 1] < 0, -origin[1] / d[:, 1], np.inf)
    # Nearest wall plane along the ray (the camera is inside the room).
    tx = np.where(d[:, 0] != 0,
                  (np.sign(d[:, 0]) * _ROOM_HALF_SIZE - origin[0]) / d[:, 0],
                  np.inf)
    tz = np.where(d[:, 2] != 0,
                  (np.sign(d[:, 2]) * _ROOM_HALF_SIZE - origin[2]) / d[:, 2],
                  np.inf)
  t_wall = np.minimum(tx, tz)
  wall_y = origin[1] + t_wall * d[:, 1]
  is_floor = t_floor < t_wall
  is_wall = ~is_floor & (wall_y <= _WALL_HEIGHT)
  # The wall facing the camera at orientation 0 is lit; the side walls not.
  wall_shade = np.where(tz <= tx, 1., _SIDE_WALL_SHADE)
  floor = is_floor.reshape(size, size) * _floor_shade(size)
  wall = (is_wall * wall_shade).reshape(size, size)
  sky = (~is_floor & ~is_wall).reshape(size, size).astype(np.float64)
  points = origin + np.where(is_floor, t_floor, np.nan)[:, None] * d
  return floor, wall, sky, points


def _render_object(shape, scale, orientation_deg, size, floor_points):
  """Renders one object layer at `size` x `size` sub-pixels.

  Returns:
    alpha, shade, specular, shadow; each [size, size].
  """
  origin, right, up, forward = _camera(orientation_deg)
  _, d = _rays(orientation_deg, size)
  t, normal = _hit_object(origin, d, shape, scale)
  alpha = np.isfinite(t)
  to_world = np.stack([right, up, forward], 1)  # columns: camera axes
  light = to_world.dot(_SHADE_LIGHT / np.linalg.norm(_SHADE_LIGHT))
  lambert = np.clip(normal.dot(light), 0., 1.)
  half = light - d
  half /= np.linalg.norm(half, axis=1, keepdims=True)
  spec = np.clip(np.einsum("ij,ij->i", normal, half), 0., 1.) ** _SHININESS
  shade = np.where(alpha, _AMBIENT + _DIFFUSE * lambert, 0.)
  spec = np.where(alpha, _SPECULAR * spec, 0.)
  # Soft shadow: fraction of a small area light seen from each floor point.
  shadow = np.ones(size * size)
  valid = np.isfinite(floor_points[:, 0]) & ~alpha
  r, h = _shape_dims(shape, scale)
  near = valid & (np.hypot(floor_points[:, 0], floor_points[:, 2]) <
                  2.5 * (r + h))
  pts = floor_points[near]
  base = to_world.dot(_SHADOW_LIGHT / np.linalg.norm(_SHADOW_LIGHT))
  jitter = np.stack(np.meshgrid(np.linspace(-1, 1, 4), np.linspace(-1, 1, 4),
                                indexing="ij"), -1).reshape(-1, 2) * 0.08
  occluded = np.zeros(len(pts))
  for jx, jz in jitter:
    direction = base + to_world.dot([jx, 0., jz])
    direction /= np.linalg.norm(direction)
    t_shadow, _ = _hit_object(pts, np.broadcast_to(direction, pts.shape),
                              shape, scale)
    occluded += np.isfinite(t_shadow)
  occluded /= len(jitter)
  shadow[near] = 1. - (1. - _SHADOW_SHADE) * occluded
  return (alpha.reshape(size, size).astype(np.float64),
          shade.reshape(size, size), spec.reshape(size, size),
          shadow.reshape(size, size))


def _build_layers():
  """Renders the compositing layers (see the module docstring).

  Returns:
    Dict of numpy arrays: background float32 [1500, 64, 64, 3] indexed by
    (floor_hue, wall_hue, orientation); multiplier float32 [480, h, 64, 3]
    and object_rgb float32 [4800, h, 64, 3] indexed by (shape, scale,
    orientation) and (shape, scale, orientation, object_hue), cropped to the
    rows `window` int64 [2] = (row0, row1) that any object or shadow
    touches; `layer_rows` int64 [480, 2], the rows of that window each
    (shape, scale, orientation) layer touches for any object hue.
  """
  ss = _SUPERSAMPLING
  size = 64 * ss
  colours = _hsv_colours()
  orientations = room_factors.factor_values(5)
  scales = room_factors.factor_values(3)
  coverage = [_render_background_coverage(o, size) for o in orientations]
  floor = np.stack([_downsample(c[0], ss) for c in coverage])  # [15, 64, 64]
  wall = np.stack([_downsample(c[1], ss) for c in coverage])
  sky = np.stack([_downsample(c[2], ss) for c in coverage])
  background = (
      floor[None, None, :, :, :, None] * colours[:, None, None, None, None] +
      wall[None, None, :, :, :, None] * colours[None, :, None, None, None] +
      sky[None, None, :, :, :, None] * _SKY_RGB)
  background = background.reshape(
      (-1,) + room_factors.IMAGE_SHAPE).astype(np.float32)

  multiplier = np.ones((4, 8, 15, 64, 64), dtype=np.float32)
  object_rgb = np.zeros((4, 8, 15, 10, 64, 64, 3), dtype=np.float32)
  for shape in range(4):
    for j, scale in enumerate(scales):
      for k, orientation in enumerate(orientations):
        if shape != 0 and k > 0:
          # Round objects look the same from every azimuth (the light moves
          # with the camera): reuse the first orientation's layers.
          multiplier[shape, j, k] = multiplier[shape, j, 0]
          object_rgb[shape, j, k] = object_rgb[shape, j, 0]
          continue
        alpha, shade, spec, shadow = _render_object(
            shape, scale, orientation, size, coverage[k][3])
        multiplier[shape, j, k] = _downsample((1. - alpha) * shadow, ss)
        lit = np.minimum(shade[None, :, :, None] * colours[:, None, None] +
                         spec[None, :, :, None], 1.) * alpha[None, :, :, None]
        object_rgb[shape, j, k] = _downsample(
            lit.transpose(1, 2, 0, 3), ss).transpose(2, 0, 1, 3)
  # The window is a band of full rows: each image's part of it is then one
  # contiguous block, which numpy composites several times faster than a
  # strided rectangle.
  used = (multiplier < 1.).reshape(-1, 64, 64).any(axis=(0, 2))
  rows = np.nonzero(used)[0]
  r0, r1 = int(rows[0]), int(rows[-1]) + 1
  # Outside its rows a layer leaves the background exactly as it is.
  touched = ((multiplier != 1.) | (object_rgb != 0.).any(axis=(3, 6)))
  touched = touched[..., r0:r1, :].any(axis=-1).reshape(480, r1 - r0)
  layer_rows = [[np.argmax(t), len(t) - np.argmax(t[::-1])] if t.any()
                else [0, 0] for t in touched]
  return {
      "background": background,
      # Stored per channel: numpy broadcasts over a trailing axis of 1 about
      # ten times slower than it multiplies equal shapes.
      "multiplier": np.repeat(
          multiplier[..., r0:r1, :, None], 3, axis=-1).reshape(
              (480, r1 - r0, 64, 3)),
      "object_rgb": object_rgb[..., r0:r1, :, :].reshape(
          (4800, r1 - r0, 64, 3)),
      "window": np.array([r0, r1], dtype=np.int64),
      "layer_rows": np.array(layer_rows, dtype=np.int64),
  }


def cached_layers():
  """Returns the layers of `_build_layers`, memory-mapped from the cache."""
  layers = cache.load_or_build("object_in_room", _RENDER_VERSION,
                               _build_layers)
  sources.record_generated("3dshapes images", __name__, "object_in_room",
                           _RENDER_VERSION)
  return layers
