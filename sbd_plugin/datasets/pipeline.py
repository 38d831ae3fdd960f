"""Batched, prefetched training input for dlib's trainer.

dlib's `util.tf_data_set_from_ground_truth_data` calls
`sample_observations(1, ...)` once per image from Python, which caps input at
a few thousand images/s. This drop-in samples `chunk_size` images per call
(one vectorised numpy call for the plugin's datasets), lets tf.data split them
into single images (dlib batches them again) and prefetches on a background
thread, so the next batch is ready while the current step runs.

Sampling distribution: the same (i.i.d. draws of `sample_observations`), with a
fixed seed giving a fixed stream; the stream differs from dlib's one-at-a-time
stream. `input_pipeline.batched = False` restores dlib's own pipeline for
exact reproduction of stock runs.
"""
import gin
import numpy as np


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


def batched_tf_data_set(ground_truth_data, random_seed, chunk_size=256,
                        prefetch_batches=4):
  """Returns an infinite tf.data.Dataset of single observations.

  Args:
    ground_truth_data: dlib GroundTruthData to sample observations from.
    random_seed: Integer seed of the numpy RandomState driving the sampling.
    chunk_size: Number of observations sampled per Python call.
    prefetch_batches: Number of chunks prepared ahead.

  Returns:
    tf.data.Dataset yielding float32 tensors of the observation shape.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  shape = tuple(ground_truth_data.observation_shape)

  def generator():
    # A fresh RandomState per iteration makes the data set restartable, as in
    # dlib's own generator.
    random_state = np.random.RandomState(random_seed)
    while True:
      yield np.asarray(
          ground_truth_data.sample_observations(chunk_size, random_state),
          dtype=np.float32)

  chunks = tf.data.Dataset.from_generator(
      generator, output_types=tf.float32,
      output_shapes=(chunk_size,) + shape)
  if prefetch_batches:
    chunks = chunks.prefetch(prefetch_batches)
  return chunks.unbatch()


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
