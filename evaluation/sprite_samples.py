"""Picture of colored sprites samples for docs/datasets/sprites.md.

Top: random samples, as training sees them. Bottom: one sprite per hue bin
(saturation and value in their top bins) drawn several times with fresh
random states: the colour varies inside each bin's HSV box, while the factor
dlib's metrics see (the bin index) stays the same along a row.

  python -m evaluation.sprite_samples [--output PATH] [--seed N]
"""
import argparse
import os

from matplotlib import figure as mpl_figure
import numpy as np

DEFAULT_OUTPUT = os.path.join("docs", "datasets",
                              "sprites_colored_samples.png")
COLUMNS = 8
RANDOM_ROWS = 3
GREY = 0.35  # Cell borders: mid grey, visible on black and on the page.


def tile(images, columns, padding=2):
  """Tiles images [N, H, W, 3] into one image with grey borders.

  Args:
    images: Float array [N, H, W, 3] in [0, 1]; N a multiple of columns.
    columns: Images per row.
    padding: Border width in pixels.

  Returns:
    Float array [rows * (H + padding) + padding, ..., 3].
  """
  num, height, width, channels = images.shape
  rows = num // columns
  out = np.full((rows * (height + padding) + padding,
                 columns * (width + padding) + padding, channels), GREY,
                np.float32)
  for i, image in enumerate(images):
    top = padding + (i // columns) * (height + padding)
    left = padding + (i % columns) * (width + padding)
    out[top:top + height, left:left + width] = image
  return out


def bin_rows(data, seed):
  """Images [num_hue_bins * COLUMNS, 64, 64, 3]: a row of draws per hue bin.

  Each row is one factor row (a heart, centred, saturation and value in
  their top bins) rendered COLUMNS times, each with its own random state.
  """
  num_hue_bins = data.factors_num_values[5]
  factors = np.zeros((num_hue_bins, 8), np.int64)
  factors[:, :5] = [2, 5, 0, 16, 16]  # Heart, largest, upright, centred.
  factors[:, 5] = np.arange(num_hue_bins)
  factors[:, 6:] = np.array(data.factors_num_values[6:]) - 1
  draws = [data.sample_observations_from_factors(
      factors, np.random.RandomState([seed, column]))
           for column in range(COLUMNS)]
  return np.stack(draws, axis=1).reshape((-1,) + draws[0].shape[1:])


def samples_figure(data, seed=0):
  """Returns the two-panel matplotlib Figure (random samples, bin rows)."""
  random = tile(data.sample_observations(RANDOM_ROWS * COLUMNS,
                                         np.random.RandomState(seed)),
                COLUMNS)
  bins = tile(bin_rows(data, seed), COLUMNS)
  low, high = data.colour_boxes(
      np.array([[0] + list(np.array(data.factors_num_values[6:]) - 1)]))
  # Layout in inches at dpi 100: two screen pixels per image pixel, the bin
  # labels in a left margin, a title line above each panel.
  scale, left, title, gap, margin = 2. / 100., 1.5, 0.35, 0.15, 0.1
  width = random.shape[1] * scale
  heights = (random.shape[0] * scale, bins.shape[0] * scale)
  fig_width = left + width + margin
  fig_height = margin + heights[1] + gap + title + heights[0] + title
  fig = mpl_figure.Figure(figsize=(fig_width, fig_height))
  ax_bins = fig.add_axes([left / fig_width, margin / fig_height,
                          width / fig_width, heights[1] / fig_height])
  ax_random = fig.add_axes([
      left / fig_width, (margin + heights[1] + title + gap) / fig_height,
      width / fig_width, heights[0] / fig_height])
  for ax, image in ((ax_random, random), (ax_bins, bins)):
    ax.imshow(image, interpolation="nearest")
    ax.set_axis_off()
  ax_random.set_title("Random samples: every factor and, inside its HSV bin, "
                      "the colour drawn per sample", fontsize=10)
  ax_bins.set_title(
      "One factor row per hue bin (saturation, value: top bins) drawn %d "
      "times: one label per row for the metrics, the colour varies inside "
      "its bin" % COLUMNS, fontsize=10)
  cell = bins.shape[0] / data.factors_num_values[5]
  hue_width = high[0, 0] - low[0, 0]
  for b in range(data.factors_num_values[5]):
    ax_bins.text(-6, (b + 0.5) * cell,
                 "hue bin %d\nh in [%.3g, %.3g)\ns in [%.3g, %.3g)\n"
                 "v in [%.3g, %.3g)" % (b, low[0, 0] + b * hue_width,
                                        low[0, 0] + (b + 1) * hue_width,
                                        low[0, 1], high[0, 1], low[0, 2],
                                        high[0, 2]),
                 ha="right", va="center", fontsize=9)
  return fig


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", default=DEFAULT_OUTPUT)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  # Imported here: the dataset pulls in dlib and TensorFlow.
  from sbd_plugin.datasets import colored_sprites  # pylint: disable=g-import-not-at-top
  fig = samples_figure(colored_sprites.ColoredSprites(), args.seed)
  fig.savefig(args.output, dpi=100)
  print(args.output)


if __name__ == "__main__":
  main()
