"""Batched, parallel, prefetched training input for dlib's trainer.

dlib's `util.tf_data_set_from_ground_truth_data` calls
`sample_observations(1, ...)` once per image from a Python generator, which
caps input at a few thousand images/s. This drop-in samples `chunk_size`
images per call, runs several calls at once on tf.data's thread pool (numpy
releases the GIL while it gathers and composites), returns them in arrays
TensorFlow adopts without copying (see `aligned`) and prefetches, so the next
batch is ready while the current step runs. When dlib's trainer batches the
data set (`.batch(batch_size, drop_remainder=True)`) and the batch size is a
multiple or a divisor of the chunk size, whole batches come straight out of the
sampling calls, with none of tf.data's per-image split and re-assembly.

The stream: chunk k (k = 0, 1, ...) is `sample_observations(chunk_size,
chunk_random_state(seed, k))`, and the images are the chunks in order. Each
chunk has its own random state (child k of numpy's `SeedSequence(seed)`), so the
chunks can be sampled in parallel and the stream is still a fixed function of
the seed and the chunk size, whatever the number of threads or the batch size.
Draws are i.i.d. from the same `sample_observations` as dlib's; the stream
differs from dlib's one-image-at-a-time stream, and
`input_pipeline.batched = False` restores dlib's own pipeline for exact
reproduction of stock runs.
"""
import gin
import numpy as np
import tensorflow as tf
from tensorflow.python.data.ops import dataset_ops  # pylint: disable=g-direct-tensorflow-import

from sbd_plugin.datasets import aligned


@gin.configurable("input_pipeline", allowlist=["batched", "chunk_size",
                                               "parallel_calls",
                                               "prefetch_batches"])
def input_pipeline_options(batched=True, chunk_size=64, parallel_calls=None,
                           prefetch_batches=4):
  """Gin-configurable options of the training input pipeline.

  Args:
    batched: If False, use dlib's stock one-image-per-call pipeline.
    chunk_size: Number of observations per `sample_observations` call; part of
      the definition of the stream (see the module docstring).
    parallel_calls: Number of chunks sampled at once; None lets tf.data tune
      it to the machine. Use 1 for a dataset that cannot be read from several
      threads. Does not change the stream.
    prefetch_batches: Number of batches (chunks, when the trainer asks for
      single images) prepared ahead of the trainer.

  Returns:
    Tuple (batched, chunk_size, parallel_calls, prefetch_batches).
  """
  if chunk_size < 1 or prefetch_batches < 0 or (
      parallel_calls is not None and parallel_calls < 1):
    raise ValueError(
        "input_pipeline.chunk_size must be >= 1, parallel_calls None or >= 1 "
        "and prefetch_batches >= 0, got %r, %r and %r." %
        (chunk_size, parallel_calls, prefetch_batches))
  return batched, chunk_size, parallel_calls, prefetch_batches


def chunk_random_state(seed, index):
  """Returns the numpy RandomState that samples chunk `index` of the stream.

  Args:
    seed: Non-negative integer seed of the stream.
    index: Non-negative integer index of the chunk.

  Returns:
    np.random.RandomState drawing from PCG64 seeded with child `index` of
    SeedSequence(seed) (numpy's recipe for independent parallel streams; it
    is also ten times cheaper to create than a seeded MT19937).
  """
  sequence = np.random.SeedSequence(int(seed), spawn_key=(int(index),))
  return np.random.RandomState(np.random.PCG64(sequence))


def sample_chunks(ground_truth_data, seed, chunk_size, first, count):
  """Returns chunks first, ..., first + count - 1 of the stream, concatenated.

  Args:
    ground_truth_data: dlib GroundTruthData to sample observations from.
    seed: Seed of the stream.
    chunk_size: Observations per chunk.
    first: Index of the first chunk.
    count: Number of consecutive chunks.

  Returns:
    Aligned C-contiguous float32 array [count * chunk_size] + observation
    shape; the dataset's own array when it already is one.

  Raises:
    ValueError: If the dataset returns observations of another shape.
  """
  shape = (chunk_size,) + tuple(ground_truth_data.observation_shape)
  out = None
  for j in range(count):
    observations = np.asarray(ground_truth_data.sample_observations(
        chunk_size, chunk_random_state(seed, first + j)))
    if observations.shape != shape:
      raise ValueError(
          "%s.sample_observations(%d, ...) returned shape %s, expected %s "
          "(observation_shape %s)." %
          (type(ground_truth_data).__name__, chunk_size, observations.shape,
           shape, list(shape[1:])))
    if (count == 1 and observations.dtype == np.float32 and
        aligned.is_aligned(observations)):
      return observations
    if out is None:
      out = aligned.empty((count * chunk_size,) + shape[1:])
    # Same float32 rounding as dlib's from_generator (np.asarray(x, float32)).
    out[j * chunk_size:(j + 1) * chunk_size] = observations
  return out


def _chunks(ground_truth_data, seed, chunk_size, chunks_per_element,
            parallel_calls, first_element=0):
  """tf.data.Dataset whose element i is chunks [i * n, (i + 1) * n), n given.

  The elements start at `first_element`: a resumed run samples none of the
  chunks it has trained on.
  """
  rows = chunk_size * chunks_per_element
  shape = [rows] + list(ground_truth_data.observation_shape)

  def sample(index):
    return sample_chunks(ground_truth_data, seed, chunk_size,
                         int(index) * chunks_per_element, chunks_per_element)

  def element(index):
    # stateful=False: each element is a pure function of its index.
    images = tf.numpy_function(sample, [index], tf.float32, stateful=False)
    return tf.ensure_shape(images, shape)

  return tf.data.Dataset.counter(first_element).map(
      element, num_parallel_calls=parallel_calls or tf.data.AUTOTUNE,
      deterministic=True)


class _ChunkedDataSet(dataset_ops.DatasetV1Adapter):
  """Single observations sampled in chunks; `batch` may yield whole batches.

  Behaves as a tf.compat.v1 Dataset of single observations (chunks split by
  `unbatch`), except that `batch(b, drop_remainder=True)` with `b` a multiple
  or a divisor of the chunk size (dlib's trainer: `.batch(batch_size,
  drop_remainder=True)`) returns a data set of batches cut directly from the
  sampled chunks. On this infinite stream that gives exactly the batches of
  `unbatch().batch(b, drop_remainder=True)` (same values, order, shape and
  dtype) without tf.data's per-image split and re-assembly.
  """

  def __init__(self, ground_truth_data, random_seed, chunk_size,
               parallel_calls, prefetch_batches, first_observation=0):
    if int(random_seed) < 0:
      raise ValueError("random_seed must be >= 0, got %r." % (random_seed,))
    self._args = (ground_truth_data, random_seed, chunk_size)
    self._parallel_calls = parallel_calls
    self._prefetch_batches = prefetch_batches
    self._first = first_observation
    first_chunk, offset = divmod(first_observation, chunk_size)
    chunks = self._prefetch(self._chunks(1, first_chunk), prefetch_batches)
    super(_ChunkedDataSet, self).__init__(chunks.unbatch().skip(offset))

  def _chunks(self, chunks_per_element, first_element):
    return _chunks(*(self._args + (chunks_per_element, self._parallel_calls,
                                   first_element)))

  def skip(self, count, name=None):
    """The same stream, `count` observations later, without sampling them."""
    if name is not None or not isinstance(count, int) or count < 0:
      return super(_ChunkedDataSet, self).skip(count, name)
    return _ChunkedDataSet(*(self._args + (
        self._parallel_calls, self._prefetch_batches, self._first + count)))

  @staticmethod
  def _prefetch(data_set, count):
    return data_set.prefetch(count) if count else data_set

  def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
            deterministic=None, name=None):
    chunk_size = self._args[2]
    fast = (drop_remainder is True and num_parallel_calls is None and
            deterministic is None and name is None and
            isinstance(batch_size, int) and batch_size > 0 and
            (batch_size % chunk_size == 0 or chunk_size % batch_size == 0) and
            self._first % batch_size == 0)
    if not fast:
      return super(_ChunkedDataSet, self).batch(
          batch_size, drop_remainder, num_parallel_calls, deterministic, name)
    if batch_size % chunk_size == 0:
      batches = self._chunks(batch_size // chunk_size,
                             self._first // batch_size)
    else:
      first_chunk, offset = divmod(self._first, chunk_size)
      shape = [chunk_size // batch_size, batch_size] + list(
          self._args[0].observation_shape)
      batches = self._chunks(1, first_chunk).map(
          lambda chunk: tf.reshape(chunk, shape)).unbatch().skip(
              offset // batch_size)
    return dataset_ops.DatasetV1Adapter(
        self._prefetch(batches, self._prefetch_batches))


def batched_tf_data_set(ground_truth_data, random_seed, chunk_size=64,
                        parallel_calls=None, prefetch_batches=4):
  """Returns an infinite tf.data.Dataset of single observations.

  Args:
    ground_truth_data: dlib GroundTruthData to sample observations from.
    random_seed: Non-negative integer seed of the stream.
    chunk_size: Number of observations per `sample_observations` call.
    parallel_calls: Number of chunks sampled at once (None: tuned by tf.data).
    prefetch_batches: Number of batches (or chunks) prepared ahead.

  Returns:
    tf.compat.v1 tf.data.Dataset yielding float32 tensors of the observation
    shape (its `batch` has a fast path, see _ChunkedDataSet).
  """
  return _ChunkedDataSet(ground_truth_data, random_seed, chunk_size,
                         parallel_calls, prefetch_batches)


def make_tf_data_set_fn(stock_fn):
  """Returns a replacement for dlib's util.tf_data_set_from_ground_truth_data.

  Args:
    stock_fn: dlib's original function, used when batching is switched off.

  Returns:
    Function with the signature (ground_truth_data, random_seed).
  """

  def tf_data_set_from_ground_truth_data(ground_truth_data, random_seed):
    """Generate a tf.data.DataSet from ground_truth data (batched)."""
    batched, chunk_size, parallel_calls, prefetch_batches = (
        input_pipeline_options())
    if not batched:
      return stock_fn(ground_truth_data, random_seed)
    return batched_tf_data_set(ground_truth_data, random_seed, chunk_size,
                               parallel_calls, prefetch_batches)

  tf_data_set_from_ground_truth_data.stock_fn = stock_fn
  return tf_data_set_from_ground_truth_data
