"""Batched, prefetched training input for dlib's trainer.

dlib's `util.tf_data_set_from_ground_truth_data` calls
`sample_observations(1, ...)` once per image from Python, which caps input at
a few thousand images/s. This drop-in samples `chunk_size` images per call
(one vectorised numpy call for the plugin's datasets), lets tf.data split them
into single images (dlib batches them again) and prefetches on a background
thread, so the next batch is ready while the current step runs. When the
trainer then asks for batches that divide a chunk (dlib's
`.batch(batch_size, drop_remainder=True)`), the generator yields each chunk
as whole batches instead of tf.data splitting it into single images and
re-assembling them: the batches are the same, without two copies of every
image and tf.data's per-image overhead.

Sampling distribution: the same (i.i.d. draws of `sample_observations`), with a
fixed seed giving a fixed stream; the stream differs from dlib's one-at-a-time
stream. `input_pipeline.batched = False` restores dlib's own pipeline for
exact reproduction of stock runs.
"""
import gin
import numpy as np
from tensorflow.python.data.ops import dataset_ops  # pylint: disable=g-direct-tensorflow-import


@gin.configurable("input_pipeline", allowlist=["batched", "chunk_size",
                                               "prefetch_batches"])
def input_pipeline_options(batched=True, chunk_size=256, prefetch_batches=4):
  """Gin-configurable options of the training input pipeline.

  Args:
    batched: If False, use dlib's stock one-image-per-call pipeline.
    chunk_size: Number of observations sampled per Python call.
    prefetch_batches: Number of chunks prepared ahead of the trainer.

  Returns:
    Tuple (batched, chunk_size, prefetch_batches).
  """
  if chunk_size < 1 or prefetch_batches < 0:
    raise ValueError("input_pipeline.chunk_size must be >= 1 and "
                     "prefetch_batches >= 0, got %r and %r." %
                     (chunk_size, prefetch_batches))
  return batched, chunk_size, prefetch_batches


def _chunk_generator(ground_truth_data, random_seed, chunk_size, rows):
  """Returns a generator function of float32 pieces of `rows` observations.

  Each chunk is one `sample_observations(chunk_size, ...)` call; it is yielded
  as chunk_size / rows consecutive pieces (numpy views, no copy).
  """

  def generator():
    # A fresh RandomState per iteration makes the data set restartable, as in
    # dlib's own generator.
    random_state = np.random.RandomState(random_seed)
    while True:
      chunk = np.ascontiguousarray(
          ground_truth_data.sample_observations(chunk_size, random_state),
          dtype=np.float32)
      for start in range(0, chunk_size, rows):
        yield chunk[start:start + rows]

  return generator


class _ChunkedDataSet(dataset_ops.DatasetV1Adapter):
  """Single observations sampled in chunks; `batch` may yield whole batches.

  Behaves as a tf.compat.v1 Dataset of single observations (chunks split by
  `unbatch`), except that `batch(b, drop_remainder=True)` with `b` dividing
  the chunk size (dlib's trainer: `.batch(batch_size, drop_remainder=True)`)
  returns a data set whose generator yields the batches directly as views of
  each chunk. On this infinite stream that gives exactly the batches of
  `unbatch().batch(b, drop_remainder=True)` (same values, order, shape and
  dtype) while skipping tf.data's per-image split and re-assembly, two copies
  of every image.
  """

  def __init__(self, ground_truth_data, random_seed, chunk_size,
               prefetch_batches):
    self._args = (ground_truth_data, random_seed, chunk_size)
    self._prefetch_batches = prefetch_batches
    super(_ChunkedDataSet, self).__init__(
        self._pieces(chunk_size, prefetch_batches).unbatch())

  def _pieces(self, rows, prefetch):
    import tensorflow as tf2  # pylint: disable=g-import-not-at-top
    ground_truth_data = self._args[0]
    shape = (rows,) + tuple(ground_truth_data.observation_shape)
    pieces = tf2.data.Dataset.from_generator(
        _chunk_generator(*(self._args + (rows,))),
        output_signature=tf2.TensorSpec(shape, tf2.float32))
    return pieces.prefetch(prefetch) if prefetch else pieces

  def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None,
            deterministic=None, name=None):
    chunk_size = self._args[2]
    fast = (drop_remainder is True and num_parallel_calls is None and
            deterministic is None and name is None and
            isinstance(batch_size, int) and batch_size > 0 and
            chunk_size % batch_size == 0)
    if not fast:
      return super(_ChunkedDataSet, self).batch(
          batch_size, drop_remainder, num_parallel_calls, deterministic, name)
    # Prefetch as many images as the chunked pipeline does.
    per_chunk = chunk_size // batch_size
    return dataset_ops.DatasetV1Adapter(
        self._pieces(batch_size, self._prefetch_batches * per_chunk))


def batched_tf_data_set(ground_truth_data, random_seed, chunk_size=256,
                        prefetch_batches=4):
  """Returns an infinite tf.data.Dataset of single observations.

  Args:
    ground_truth_data: dlib GroundTruthData to sample observations from.
    random_seed: Integer seed of the numpy RandomState driving the sampling.
    chunk_size: Number of observations sampled per Python call.
    prefetch_batches: Number of chunks prepared ahead.

  Returns:
    tf.compat.v1 tf.data.Dataset yielding float32 tensors of the observation
    shape (its `batch` has a fast path, see _ChunkedDataSet).
  """
  return _ChunkedDataSet(ground_truth_data, random_seed, chunk_size,
                         prefetch_batches)


def make_tf_data_set_fn(stock_fn):
  """Returns a replacement for dlib's util.tf_data_set_from_ground_truth_data.

  Args:
    stock_fn: dlib's original function, used when batching is switched off.

  Returns:
    Function with the signature (ground_truth_data, random_seed).
  """

  def tf_data_set_from_ground_truth_data(ground_truth_data, random_seed):
    """Generate a tf.data.DataSet from ground_truth data (batched)."""
    batched, chunk_size, prefetch_batches = input_pipeline_options()
    if not batched:
      return stock_fn(ground_truth_data, random_seed)
    return batched_tf_data_set(ground_truth_data, random_seed, chunk_size,
                               prefetch_batches)

  tf_data_set_from_ground_truth_data.stock_fn = stock_fn
  return tf_data_set_from_ground_truth_data
