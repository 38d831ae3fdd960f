"""The plugin's training input (sbd_plugin/datasets/pipeline.py)."""
import gin
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from disentanglement_lib.data.ground_truth import dummy_data  # activates the plugin
from disentanglement_lib.data.ground_truth import util
from disentanglement_lib.methods.unsupervised import train
from sbd_plugin.datasets import aligned
from sbd_plugin.datasets import pipeline


def _stream(data, seed, chunks, chunk_size=64):
  """The documented stream: chunk k drawn with chunk_random_state(seed, k)."""
  return np.concatenate([
      data.sample_observations(chunk_size,
                               pipeline.chunk_random_state(seed, k))
      for k in range(chunks)]).astype(np.float32)


def _trainer_batches(data, seed, batch_size, n, bindings=()):
  """First n batches of the input dlib's trainer builds (train._make_input_fn)."""
  with gin.unlock_config():
    for binding in bindings:
      gin.parse_config(binding)
  try:
    with tf.Graph().as_default():
      batch = train._make_input_fn(data, seed)({"batch_size": batch_size})  # pylint: disable=protected-access
      with tf.Session() as sess:
        return np.stack([sess.run(batch) for _ in range(n)])
  finally:
    gin.clear_config()


def test_stream_is_the_documented_chunk_sequence():
  data = dummy_data.DummyData()
  batches = _trainer_batches(data, 7, 64, 3)
  assert batches.shape == (3, 64, 64, 64, 1) and batches.dtype == np.float32
  np.testing.assert_array_equal(batches.reshape(-1, 64, 64, 1),
                                _stream(data, 7, 3))
  # Chunks have their own random states, and seeds give different streams.
  assert not np.array_equal(batches[0], batches[1])
  assert not np.array_equal(batches, _trainer_batches(data, 8, 64, 3))


@pytest.mark.parametrize("batch_size,parallel_calls",
                         [(16, 1), (64, 3), (128, None), (10, 2)])
def test_stream_does_not_depend_on_batch_size_or_threads(batch_size,
                                                         parallel_calls):
  """Whole-batch fast paths (16, 64, 128) and tf.data's own batching (10)."""
  data = dummy_data.DummyData()
  n = 1 + 256 // batch_size
  batches = _trainer_batches(
      data, 5, batch_size, n,
      ["input_pipeline.parallel_calls = %r" % parallel_calls])
  assert batches.shape == (n, batch_size, 64, 64, 1)
  expected = _stream(data, 5, 1 + n * batch_size // 64)[:n * batch_size]
  np.testing.assert_array_equal(batches.reshape(-1, 64, 64, 1), expected)


@pytest.mark.parametrize("batch_size,skip", [(16, 32), (16, 80), (128, 256),
                                             (10, 30), (16, 7)])
def test_skipping_resumes_the_stream_without_a_gap(batch_size, skip):
  """A resumed run's input (data_set.skip) continues the same stream.

  Covers both whole-batch fast paths, a skip inside a chunk, tf.data's own
  batching (10) and a skip that is not a whole number of batches.
  """
  data = dummy_data.DummyData()
  n = 3
  with tf.Graph().as_default():
    data_set = util.tf_data_set_from_ground_truth_data(data, 4).skip(skip)
    batch = tf.data.make_one_shot_iterator(
        data_set.batch(batch_size, drop_remainder=True)).get_next()
    with tf.Session() as sess:
      batches = np.stack([sess.run(batch) for _ in range(n)])
  expected = _stream(data, 4, 2 + (skip + n * batch_size) // 64)
  np.testing.assert_array_equal(batches.reshape(-1, 64, 64, 1),
                                expected[skip:skip + n * batch_size])


def test_single_observations_follow_the_same_stream():
  data = dummy_data.DummyData()
  with tf.Graph().as_default():
    data_set = util.tf_data_set_from_ground_truth_data(data, 3)
    image = tf.data.make_one_shot_iterator(data_set).get_next()
    with tf.Session() as sess:
      images = np.stack([sess.run(image) for _ in range(70)])
  assert images.shape == (70, 64, 64, 1)
  np.testing.assert_array_equal(images, _stream(data, 3, 2)[:70])


def test_plugin_dataset_stream_is_rendered_images():
  from sbd_plugin.datasets import colored_sprites  # pylint: disable=g-import-not-at-top
  data = colored_sprites.ColoredSprites()
  batches = _trainer_batches(data, 11, 32, 4)
  np.testing.assert_array_equal(batches.reshape(-1, 64, 64, 3),
                                _stream(data, 11, 2))


def test_gin_switch_restores_dlibs_stock_pipeline():
  data = dummy_data.DummyData()
  images = _trainer_batches(data, 3, 4, 1, ["input_pipeline.batched = False"])
  rs = np.random.RandomState(3)
  expected = np.stack([data.sample_observations(1, rs)[0] for _ in range(4)])
  np.testing.assert_array_equal(images[0], expected.astype(np.float32))


@pytest.mark.parametrize("options", [dict(chunk_size=0),
                                     dict(parallel_calls=0),
                                     dict(prefetch_batches=-1)])
def test_bad_options_are_rejected(options):
  with pytest.raises(ValueError, match="input_pipeline"):
    pipeline.input_pipeline_options(**options)


class _WrongShapeData(dummy_data.DummyData):
  """Declares 64x64x1 observations but renders 32x32x1."""

  def sample_observations_from_factors(self, factors, random_state):
    return random_state.random_sample(size=(factors.shape[0], 32, 32, 1))


def test_wrong_observation_shape_is_a_clear_error():
  with pytest.raises(tf.errors.OpError,
                     match=r"_WrongShapeData.sample_observations\(64, \.\.\.\) "
                           r"returned shape \(64, 32, 32, 1\), expected "
                           r"\(64, 64, 64, 1\)"):
    _trainer_batches(_WrongShapeData(), 0, 64, 1)


def test_chunks_are_handed_to_tensorflow_in_aligned_arrays():
  """Aligned float32 arrays are adopted by TensorFlow without a copy."""
  from sbd_plugin.datasets import room  # pylint: disable=g-import-not-at-top
  from sbd_plugin.datasets import colored_sprites  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(0)
  for data in (colored_sprites.ColoredSprites(), room.RenderedShapes3D()):
    images = data.sample_observations(5, rs)
    assert images.dtype == np.float32 and aligned.is_aligned(images)
  # dlib's float64 dataset is converted into an aligned float32 array.
  chunk = pipeline.sample_chunks(dummy_data.DummyData(), 0, 64, 0, 2)
  assert chunk.dtype == np.float32 and aligned.is_aligned(chunk)
  assert chunk.shape == (128, 64, 64, 1)


@pytest.mark.parametrize("shape,dtype", [((3, 5), np.float32),
                                         ((7, 64, 64, 3), np.float64),
                                         ((1,), np.uint8)])
def test_aligned_arrays(shape, dtype):
  for array in (aligned.empty(shape, dtype), aligned.zeros(shape, dtype)):
    assert array.shape == shape and array.dtype == dtype
    assert array.ctypes.data % aligned.ALIGNMENT == 0
    assert array.flags.c_contiguous and array.flags.writeable
  assert not aligned.zeros(shape, dtype).any()
