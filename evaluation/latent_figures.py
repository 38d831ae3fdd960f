"""Figures of a trained model's latents: traversals and latent geometry.

Drawing only, from numbers it is handed: latent traversals (a
`latent_traversals.Traversals`, or several side by side) and the latent-space
geometry "grid of lines" (a `latent_geometry.Geometry`, with the held-out
region when it has one). Computing them from a model is
evaluation/latent_traversals.py's and evaluation/latent_geometry.py's job;
the PNG is written by evaluation/figures.py's `save_png`.

Each `*_figure` function returns the matplotlib Figure and the matching
`plot_*` function writes it as one PNG and returns its path.
"""
import matplotlib
from matplotlib import figure as mpl_figure
from matplotlib import lines as mpl_lines
from matplotlib import patches as mpl_patches
import numpy as np

from evaluation import figures

_PADDING = 2  # White pixels between traversal images.
_CELL = 0.75  # Inches per traversal image.
# The held-out region in the latent-geometry figure: its colour, and the gids
# of its box (ground-truth panel) and of the hollow points inside it.
_REGION_COLOUR = "tab:red"
_REGION_FILL = matplotlib.colors.to_rgba(_REGION_COLOUR, 0.12)
HELDOUT_REGION = "heldout_region"
HELDOUT_POINTS = "heldout_points"


# --- Latent traversals ------------------------------------------------------


def _grid(images, padding):
  """Tiles images [R, C, H, W, ch] with white padding (dlib's padded_grid)."""
  # Imported here: visualize_util imports TensorFlow, which the other
  # figures do not need.
  from disentanglement_lib.visualize import visualize_util  # pylint: disable=g-import-not-at-top
  rows, cols = images.shape[:2]
  return visualize_util.padded_grid(
      list(images.reshape((rows * cols,) + images.shape[2:])), num_rows=rows,
      padding_px=padding)


def _show(ax, image):
  image = np.clip(image, 0.0, 1.0)
  if image.shape[-1] == 1:
    ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0,
              interpolation="nearest")
  else:
    ax.imshow(image, interpolation="nearest")


def _traversal_grid(ax, t, num_rows=None):
  """Draws the traversal images of `t` as one padded grid on `ax`.

  Args:
    ax: matplotlib Axes.
    t: latent_traversals.Traversals.
    num_rows: Rows of space to take (>= the latents shown), so that grids
      with fewer latents keep the image scale of a taller neighbour; the
      rows below are left empty.
  """
  rows, cols, h, w = t.images.shape[:4]
  _show(ax, _grid(t.images, _PADDING))
  if num_rows and num_rows > rows:
    ax.set_ylim(num_rows * (h + _PADDING) - _PADDING - 0.5, -0.5)
  ax.set_yticks([r * (h + _PADDING) + h / 2 for r in range(rows)])
  ax.set_yticklabels(["z%d  (σ²=%.2f)" % (k, t.mean_variances[k])
                      for k in t.latents], fontsize=8)
  ax.set_xticks([c * (w + _PADDING) + w / 2 for c in range(cols)])
  ax.set_xticklabels(["%+.1f" % v for v in t.values], fontsize=8)
  ax.tick_params(length=0)
  for spine in ax.spines.values():
    spine.set_visible(False)


def _small_image(ax, image, title):
  _show(ax, image)
  ax.set_title(title, fontsize=8)
  ax.axis("off")


def traversals_figure(traversals):
  """Draws latent traversals (see `latent_traversals.traversal_images`).

  Args:
    traversals: latent_traversals.Traversals.

  Returns:
    matplotlib Figure: the input and its reconstruction on the left, one row
    per shown latent (labelled with its mean posterior variance) and one
    column per swept value on the right.
  """
  t = traversals
  rows, cols = t.images.shape[:2]
  # At least two rows high: the input and reconstruction panels need room.
  fig = mpl_figure.Figure(
      figsize=(2.6 + _CELL * cols, 1.2 + 1.1 * _CELL * max(rows, 2)),
      layout="constrained")
  grid = fig.add_gridspec(max(rows, 2), 2, width_ratios=[1.3, cols])
  _small_image(fig.add_subplot(grid[0, 0]), t.seed_image, "input")
  _small_image(fig.add_subplot(grid[1, 0]), t.reconstruction,
               "reconstruction")
  ax = fig.add_subplot(grid[:, 1])
  _traversal_grid(ax, t)
  ax.set_xlabel("latent value (others at the input's posterior mean)",
                fontsize=9)
  ax.set_title("Latent traversals, ordered by mean posterior variance σ²",
               fontsize=10)
  return fig


def plot_traversals(traversals, path):
  """Writes `traversals_figure(traversals)` to `path` (PNG); returns path."""
  return figures.save_png(traversals_figure(traversals), path)


def traversal_comparison_figure(traversals):
  """Traversals of several models from one input, side by side.

  Args:
    traversals: Dict label (e.g. decoder) -> latent_traversals.Traversals,
      all of the same input image (see
      `latent_traversals.traversal_comparison`); drawn left to right in the
      dict's order.

  Returns:
    matplotlib Figure: the shared input on the left; per label a column with
    the model's reconstruction above its traversal grid (its own latents,
    ordered by its own mean posterior variance). The grid axes carry the
    label "traversals:<label>", the reconstructions "reconstruction:<label>".
  """
  labels = list(traversals)
  first = traversals[labels[0]]
  cols = first.images.shape[1]
  rows = max(t.images.shape[0] for t in traversals.values())
  fig = mpl_figure.Figure(
      figsize=(1.2 + (1.3 + _CELL * cols) * len(labels),
               1.9 + 1.1 * _CELL * rows), layout="constrained")
  grid = fig.add_gridspec(2, 1 + len(labels), height_ratios=[1.2, rows],
                          width_ratios=[1.0] + [cols] * len(labels))
  _small_image(fig.add_subplot(grid[0, 0]), first.seed_image, "input")
  for i, label in enumerate(labels):
    t = traversals[label]
    ax_rec = fig.add_subplot(grid[0, 1 + i], label="reconstruction:%s" %
                             label)
    _small_image(ax_rec, t.reconstruction, "%s: reconstruction" % label)
    ax = fig.add_subplot(grid[1, 1 + i], label="traversals:%s" % label)
    _traversal_grid(ax, t, num_rows=rows)
    # Values on top: a short grid's bottom edge is far below its images.
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.set_xlabel("latent value", fontsize=9)
    ax.set_title("%s decoder" % label, fontsize=10, fontweight="bold")
    shown = len(t.latents)
    if shown < rows:
      ax.text(0.5, 1.0 - (shown + 0.5) / rows,
              "%d of %d latents shown:\nthe others are non-coding" % (
                  shown, len(t.mean_variances)),
              ha="center", va="center", transform=ax.transAxes, fontsize=9,
              color="gray")
  fig.suptitle("Latent traversals of the same input, each model's latents "
               "ordered by its mean posterior variance σ²", fontsize=10)
  return fig


def plot_traversal_comparison(traversals, path):
  """Writes `traversal_comparison_figure` to `path` (PNG); returns path."""
  return figures.save_png(traversal_comparison_figure(traversals), path)


# --- Latent-space geometry --------------------------------------------------


def _line_colours(lines):
  """Blues for lines along x, oranges/reds for lines along y."""
  colours = []
  for along, cmap in (("x", "Blues"), ("y", "Oranges")):
    n = sum(1 for line in lines if line.along == along)
    shades = matplotlib.colormaps[cmap](np.linspace(0.45, 0.95, max(n, 1)))
    colours.extend(shades[:n])
  return colours


def _factor_name(factor_names, index):
  try:
    return str(factor_names[index])
  except (TypeError, IndexError):
    return "factor %d" % index


def _factor_label(factor_names, index):
  try:
    return "factor %d (%s)" % (index, factor_names[index])
  except (TypeError, IndexError):
    return "factor %d" % index


def _latent_label(geometry, axis):
  """Axis label of the latent on `axis` (0: x, 1: y), with its R^2."""
  g = geometry
  latent = g.latents[axis]
  factor = _factor_name(g.factor_names, (g.factor_x, g.factor_y)[axis])
  label = "z%d posterior mean" % latent
  if g.scores is not None:
    label += " (R² with %s = %.2f)" % (factor, g.scores[axis])
  return label


def _grid_points(ax, xy, colour, held_out):
  """One line's points: filled, hollow where they are in the region."""
  held_out = np.zeros(len(xy), bool) if held_out is None else held_out
  ax.scatter(xy[~held_out, 0], xy[~held_out, 1], s=10, color=colour,
             zorder=3)
  if held_out.any():
    ax.scatter(xy[held_out, 0], xy[held_out, 1], s=22, facecolors="none",
               edgecolors=colour, linewidths=1.0, zorder=3,
               gid=HELDOUT_POINTS)


def latent_geometry_figure(geometry):
  """Draws the grid of lines and its encoding.

  The numbers come from `latent_geometry.latent_geometry`.

  Args:
    geometry: latent_geometry.Geometry.

  Returns:
    matplotlib Figure: the ground-truth grid in factor-index space on the
    left (y index downwards, as posY runs in the image), the posterior means
    of the chosen latent pair on the right (axes labelled with each latent's
    R^2 with its factor), each line in the same colour in both. With a
    held-out region, its box is drawn on the left (a Rectangle with gid
    HELDOUT_REGION) and the grid points inside it are hollow in both panels
    (scatter collections with gid HELDOUT_POINTS).
  """
  g = geometry
  colours = _line_colours(g.lines)
  in_region = g.in_region or [None] * len(g.lines)
  fig = mpl_figure.Figure(figsize=(10, 4.8), layout="constrained")
  ax_true, ax_latent = fig.subplots(1, 2)
  for line, latent, colour, held_out in zip(g.lines, g.latent_points,
                                            colours, in_region):
    for ax, xy in ((ax_true, line.points), (ax_latent, latent)):
      ax.plot(xy[:, 0], xy[:, 1], "-", color=colour, lw=1.0, alpha=0.8)
      _grid_points(ax, xy, colour, held_out)
  ax_true.set_xlabel(_factor_label(g.factor_names, g.factor_x) + " index")
  ax_true.set_ylabel(_factor_label(g.factor_names, g.factor_y) + " index")
  ax_true.set_title("Ground truth: grid of lines in factor space\n(y index "
                    "grows downwards, as rows do in an image)", fontsize=10)
  if g.region_box is not None:
    x_low, x_high, y_low, y_high = g.region_box
    ax_true.add_patch(mpl_patches.Rectangle(
        (x_low - 0.5, y_low - 0.5), x_high - x_low + 1, y_high - y_low + 1,
        facecolor=_REGION_FILL, edgecolor=_REGION_COLOUR, linestyle="--",
        lw=1.5, zorder=1, gid=HELDOUT_REGION))
  ax_true.set_aspect("equal", adjustable="datalim")
  ax_true.invert_yaxis()  # posY's lower-right quadrant shows lower right
  if len(g.latents) == 2:
    ax_latent.set_xlabel(_latent_label(g, 0))
    ax_latent.set_ylabel(_latent_label(g, 1))
  ax_latent.set_title("Encoded: the latents that track each factor best"
                      if g.scores is not None else
                      "Encoded: the chosen pair of latents", fontsize=10)
  handles = [mpl_lines.Line2D([], [], color=matplotlib.colormaps[c](0.8),
                              marker="o", ms=4) for c in ("Blues", "Oranges")]
  labels = ["lines along the x factor", "lines along the y factor"]
  if g.in_region is not None:
    handles += [mpl_patches.Patch(facecolor=_REGION_FILL,
                                  edgecolor=_REGION_COLOUR, linestyle="--"),
                mpl_lines.Line2D([], [], color="gray", marker="o", ls="",
                                 ms=5, markerfacecolor="none")]
    labels += ["held-out region (never in training)",
               "grid point in the held-out region"]
  fig.legend(handles=handles, labels=labels, loc="outside lower center",
             ncol=len(handles), fontsize=9, frameon=False)
  return fig


def plot_latent_geometry(geometry, path):
  """Writes `latent_geometry_figure(geometry)` to `path` (PNG); returns path."""
  return figures.save_png(latent_geometry_figure(geometry), path)
