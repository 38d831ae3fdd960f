"""Observation arrays TensorFlow can adopt without copying.

TensorFlow wraps a numpy array returned to tf.data (from_generator,
numpy_function) as a tensor without a copy only if its data pointer is aligned
to Eigen's vector width; numpy's large allocations are 16-byte aligned, so
every batch would otherwise be copied once more (a third of the input
pipeline's time for 64x64x3 float32 images). The datasets allocate their
outputs here; the pipeline copies other arrays (dlib's datasets) into one.
"""
import numpy as np

# Eigen's EIGEN_MAX_ALIGN_BYTES is 16, 32 or 64 by instruction set; 64 fits all.
ALIGNMENT = 64


def _allocate(numpy_alloc, shape, dtype):
  """Returns an array of `shape` cut from `numpy_alloc`'s bytes on a boundary."""
  dtype = np.dtype(dtype)
  size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  raw = numpy_alloc(size + ALIGNMENT, dtype=np.uint8)
  start = -raw.ctypes.data % ALIGNMENT
  return raw[start:start + size].view(dtype).reshape(shape)


def empty(shape, dtype=np.float32):
  """Returns an uninitialised C-contiguous array aligned to ALIGNMENT bytes."""
  return _allocate(np.empty, shape, dtype)


def zeros(shape, dtype=np.float32):
  """Returns a zero-filled C-contiguous array aligned to ALIGNMENT bytes."""
  # np.zeros gets fresh zero pages from the OS: no separate zeroing pass.
  return _allocate(np.zeros, shape, dtype)


def is_aligned(array):
  """True if `array` is C-contiguous and starts on an ALIGNMENT boundary."""
  return (array.flags.c_contiguous and
          array.ctypes.data % ALIGNMENT == 0)
