"""A representation function as dlib's metrics need it: checked, batched.

dlib's metrics call `representation_function(observations)` with numpy
batches [batch, height, width, channels] of float32 in [0, 1] (the batch size
is the metric's: 16 for MIG and DCI, up to `num_variance_estimate` images at
once for the FactorVAE score) and expect a numpy array [batch, dims] of
floats. `Checked` runs a user's function in chunks of at most `batch_size`
images and checks every answer, so a model that returns the wrong thing
fails with a message naming it instead of giving wrong numbers; `probe`
runs it once on a first batch before any metric starts.
"""
import numpy as np


class RepresentationError(ValueError):
  """A model's output cannot be a representation for dlib's metrics."""


def check_output(name, output, num_images):
  """Checks one answer of a representation function.

  Args:
    name: The model's name, for messages.
    output: What the function returned for `num_images` images.
    num_images: Size of the batch it was given.

  Returns:
    The output as a numpy array [num_images, dims].

  Raises:
    RepresentationError: if it is not a finite float array of that shape
      with dims >= 1.
  """
  output = np.asarray(output)
  if output.ndim != 2 or output.shape[0] != num_images:
    raise RepresentationError(
        "Model %s returned shape %s for a batch of %d images; expected "
        "[batch, dims] = [%d, dims]: one representation vector (the mean) per "
        "image." % (name, list(output.shape), num_images, num_images))
  if not np.issubdtype(output.dtype, np.floating):
    raise RepresentationError(
        "Model %s returned dtype %s; expected floats (float32 or float64)." %
        (name, output.dtype))
  if output.shape[1] == 0:
    raise RepresentationError(
        "Model %s returned [%d, 0]: a representation needs at least one "
        "dimension." % (name, num_images))
  finite = np.isfinite(output)
  if not finite.all():
    rows = np.flatnonzero(~finite.all(axis=1))
    raise RepresentationError(
        "Model %s returned NaN or Inf for %d of %d images (first: image %d "
        "of the batch); metrics need finite values." % (
            name, len(rows), num_images, rows[0]))
  return output


class Checked(object):
  """A representation function run in chunks, its every answer checked.

  Attributes:
    name: The model's name, for messages.
    batch_size: Most images given to the function at once.
  """

  def __init__(self, fn, name, batch_size=64):
    if batch_size < 1:
      raise ValueError("batch_size must be at least 1, got %r." % batch_size)
    self._fn = fn
    self.name = name
    self.batch_size = int(batch_size)

  def __call__(self, observations):
    """Returns the representation [N, dims] of observations [N, H, W, C]."""
    observations = np.ascontiguousarray(observations, dtype=np.float32)
    chunks = []
    for start in range(0, len(observations), self.batch_size):
      chunk = observations[start:start + self.batch_size]
      chunks.append(check_output(self.name, self._fn(chunk), len(chunk)))
    if not chunks:
      raise RepresentationError("Model %s was given no images." % self.name)
    return np.concatenate(chunks)


def probe(checked, dataset, num_images, seed=0):
  """Runs the function once on real observations, before any metric.

  Uses its own random stream, so the metrics' draws are untouched.

  Args:
    checked: A Checked representation function.
    dataset: dlib GroundTruthData the metrics will use.
    num_images: Images in the probe batch.
    seed: Seed of the probe's draw.

  Returns:
    Integer, the representation's number of dimensions.

  Raises:
    RepresentationError: see `check_output`.
  """
  observations = dataset.sample_observations(num_images,
                                             np.random.RandomState(seed))
  return checked(observations).shape[1]
