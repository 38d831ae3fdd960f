"""Test helpers: compare generated dSprites masks with DeepMind's real frames.

The frames are those of tests/data/reference/dsprites.gif; the match is
measured in tests/test_datasets_sprites.py (see docs/datasets/sprites.md).
"""
import numpy as np
from PIL import Image
from PIL import ImageSequence

from sbd_plugin.datasets import dsprites_raster as raster


def best_match_iou(frames, render_fn=raster.render_masks, position_radius=2):
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
  reference = render_fn(grid[:, 0], raster.SCALE_VALUES[grid[:, 1]],
                        raster.ORIENTATION_VALUES[grid[:, 2]], zero, zero)
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
    masks = render_fn(cand[:, 0], raster.SCALE_VALUES[cand[:, 1]],
                      raster.ORIENTATION_VALUES[cand[:, 2]],
                      raster.POSITION_VALUES[cand[:, 3]],
                      raster.POSITION_VALUES[cand[:, 4]])
    inter = (masks & frame).sum((1, 2))
    union = (masks | frame).sum((1, 2))
    score = inter / np.maximum(union, 1)
    k = int(np.argmax(score))
    ious[f], best[f] = score[k], cand[k]
  return ious, best


def load_gif_masks(path):
  """Decodes a GIF of binary sprites into bool masks [F, H, W]."""
  with Image.open(path) as image:
    return np.stack([np.asarray(frame.convert("L")) > 127
                     for frame in ImageSequence.Iterator(image)])
