"""3D Object-in-Room: DeepMind's 3dshapes.h5 reader and the rendered look-alike.

The factor structure is exactly DeepMind's 3dshapes (see `room_factors`).
`RealShapes3D` reads a user's `3dshapes.h5` on demand (never the 22 GiB
float32 copy dlib's own loader makes). `ObjectInRoom` uses that file when it is
present and otherwise `RenderedShapes3D`, which composites the cached layers of
`room_renderer` per batch.
"""
import logging
import os

from disentanglement_lib.data.ground_truth import ground_truth_data
import gin
import numpy as np

from sbd_plugin.datasets import aligned
from sbd_plugin.datasets import data_dir
from sbd_plugin.datasets import room_factors
from sbd_plugin.datasets import room_renderer
from sbd_plugin.datasets import sources

EXPECTED_LAYOUT = ("datasets `images` uint8 [480000, 64, 64, 3] and `labels` "
                   "float64 [480000, 6] (DeepMind's 3dshapes.h5)")

_missing_file_warned = False


class _Shapes3DFactors(ground_truth_data.GroundTruthData):
  """Factor bookkeeping shared by the real reader and the renderer."""

  @property
  def num_factors(self):
    return len(room_factors.FACTOR_SIZES)

  @property
  def factors_num_values(self):
    return list(room_factors.FACTOR_SIZES)

  @property
  def observation_shape(self):
    return list(room_factors.IMAGE_SHAPE)

  @property
  def factor_names(self):
    return list(room_factors.FACTOR_NAMES)

  def factor_values(self, i):
    """Returns the label values of factor `i` (see module `factor_values`)."""
    return room_factors.factor_values(i)

  def sample_factors(self, num, random_state):
    """Samples a batch of factor indices, int64 [num, 6].

    Draws factor by factor like dlib's SplitDiscreteStateSpace, so a seed gives
    the same factors as dlib's own `shapes3d`.
    """
    factors = np.zeros((num, len(room_factors.FACTOR_SIZES)), dtype=np.int64)
    for i, size in enumerate(room_factors.FACTOR_SIZES):
      factors[:, i] = random_state.randint(size, size=num)
    return factors

  def sample_observations_from_factors(self, factors, random_state):
    """Returns float32 images [num, 64, 64, 3] in [0, 1] for factor indices.

    Args:
      factors: Integer array [num, 6] of factor indices.
      random_state: Unused (the images are a deterministic function of the
        factors); kept for dlib's interface.
    """
    del random_state
    factors = np.asarray(factors, dtype=np.int64)
    sizes = room_factors.FACTOR_SIZES
    if factors.ndim != 2 or factors.shape[1] != len(sizes):
      raise ValueError("factors must have shape [num, 6], got %s." %
                       (factors.shape,))
    if np.any(factors < 0) or np.any(factors >= np.array(sizes)):
      raise ValueError("factor indices out of range %s." % (sizes,))
    return self._images(factors)

  def images_at(self, indices):
    """Returns float32 images for flat indices into the 480,000 images."""
    return self._images(room_factors.index_to_factors(np.atleast_1d(indices)))

  def _images(self, factors):
    raise NotImplementedError()


# ---------------------------------------------------------------------------
# Real file.


class RealShapes3D(_Shapes3DFactors):
  """DeepMind's 3dshapes.h5 read on demand.

  A contiguous `images` dataset (as DeepMind ships it) is memory-mapped, so a
  batch is one numpy gather from the page cache; a chunked one is read with
  h5py using sorted unique indices. Only the requested images are ever
  converted to float32.
  """

  def __init__(self, path):
    import h5py  # pylint: disable=g-import-not-at-top
    self.path = path
    self.source = "real"
    try:
      self._file = h5py.File(path, "r")
      images = self._file["images"]
      labels = self._file["labels"]
    except (OSError, KeyError) as e:
      raise IOError("Cannot read 3dshapes file %s (%s); expected %s." %
                    (path, e, EXPECTED_LAYOUT)) from e
    for name, member in (("images", images), ("labels", labels)):
      if not isinstance(member, h5py.Dataset):
        self._file.close()
        raise ValueError("3dshapes file %s: `%s` is a %s, not a dataset; "
                         "expected %s." % (path, name, type(member).__name__,
                                           EXPECTED_LAYOUT))
    num = room_factors.NUM_IMAGES
    if (images.shape != (num,) + room_factors.IMAGE_SHAPE or
        images.dtype != np.uint8 or labels.shape != (num, 6) or
        labels.dtype != np.float64):
      found = "images %s %s and labels %s %s" % (
          images.dtype, list(images.shape), labels.dtype, list(labels.shape))
      self._file.close()
      raise ValueError("3dshapes file %s has %s; expected %s." %
                       (path, found, EXPECTED_LAYOUT))
    self._check_label_order(labels)
    sources.record_file("3dshapes images", path)
    self._h5_images = images
    self._memmap = None
    offset = images.id.get_offset()
    if offset is not None and images.chunks is None and \
        images.compression is None:
      # Contiguous storage: a plain memmap is ~100x faster than h5py's
      # fancy indexing and shares the page cache between processes.
      self._memmap = np.memmap(path, dtype=np.uint8, mode="r", offset=offset,
                               shape=images.shape)

  def _check_label_order(self, labels):
    """Checks a few rows' labels against the index order this reader assumes."""
    rows = np.array([0, 1, 14, 15, 479999, 123457, 271828, 314159])
    got = labels[np.sort(rows)]
    factors = room_factors.index_to_factors(np.sort(rows))
    want = np.stack([room_factors.factor_values(i)[factors[:, i]]
                     for i in range(6)], 1)
    if not np.allclose(got, want, atol=1e-6):
      raise ValueError(
          "3dshapes file %s: labels do not follow DeepMind's index order %s "
          "(orientation fastest); expected %s." %
          (self.path, room_factors.FACTOR_NAMES, EXPECTED_LAYOUT))

  @property
  def is_memory_mapped(self):
    return self._memmap is not None

  def _images(self, factors):
    index = room_factors.factors_to_index(factors)
    if self._memmap is not None:
      raw = self._memmap[index]
    else:
      unique, inverse = np.unique(index, return_inverse=True)
      raw = self._h5_images[unique][inverse]
    # Same values as dlib's `astype(np.float32) / 255.`, in an aligned array
    # that TensorFlow takes without copying.
    out = aligned.empty(raw.shape)
    np.divide(raw, np.float32(255.), out=out, dtype=np.float32)
    return out


class RenderedShapes3D(_Shapes3DFactors):
  """The procedural look-alike of 3dshapes, composited from cached layers."""

  def __init__(self):
    self.source = "generated"
    arrays = room_renderer.cached_layers()
    # Plain ndarray views of the memory maps: indexing an np.memmap goes
    # through its Python subclass hooks on every call.
    self._background = np.asarray(arrays["background"])
    self._multiplier = np.asarray(arrays["multiplier"])
    self._object_rgb = np.asarray(arrays["object_rgb"])
    r0, r1 = (int(v) for v in arrays["window"])
    self._rows = slice(r0, r1)
    self._layer_rows = np.asarray(arrays["layer_rows"]).tolist()

  def _images(self, factors):
    f = factors
    # Gathered into an aligned array, which TensorFlow takes without copying;
    # mode="clip" keeps np.take from buffering (indices are already checked).
    out = np.take(self._background, (f[:, 0] * 10 + f[:, 1]) * 15 + f[:, 5],
                  axis=0,
                  out=aligned.empty((len(f),) + room_factors.IMAGE_SHAPE),
                  mode="clip")
    layers = (f[:, 4] * 8 + f[:, 3]) * 15 + f[:, 5]
    objects = layers * 10 + f[:, 2]
    # One image at a time, in place and only over the rows its object and
    # shadow touch: batch-sized gathered temporaries cost more in page faults
    # than the arithmetic.
    for image, layer, obj in zip(out[:, self._rows], layers.tolist(),
                                 objects.tolist()):
      r0, r1 = self._layer_rows[layer]
      rows = image[r0:r1]
      rows *= self._multiplier[layer, r0:r1]
      rows += self._object_rgb[obj, r0:r1]
    return out


@gin.configurable("object_in_room", allowlist=["data_path", "use_real_data"])
class ObjectInRoom(_Shapes3DFactors):
  """3D Object-in-Room: DeepMind's 3dshapes.h5 if present, else rendered.

  Both sources share the factor structure, label values and index order of
  3dshapes, so a model or figure does not depend on which one is used (the
  `source` attribute says which).
  """

  def __init__(self, data_path=None, use_real_data=True):
    """Opens the real file or the rendered look-alike.

    Args:
      data_path: Path of DeepMind's 3dshapes.h5; None means
        $DISENTANGLEMENT_LIB_DATA/3dshapes/3dshapes.h5.
      use_real_data: If False, always use the renderer (for example to
        compare against the real images).
    """
    global _missing_file_warned
    path = data_path or data_dir.path(data_dir.SHAPES3D_H5)
    self._impl = None
    if use_real_data:
      if os.path.exists(path):
        self._impl = RealShapes3D(path)
      elif not _missing_file_warned:
        _missing_file_warned = True
        logging.warning(
            "object_in_room: %s not found; using the procedural renderer "
            "instead of DeepMind's 3dshapes (put the file there to use it).",
            path)
    if self._impl is None:
      self._impl = RenderedShapes3D()
    self.source = self._impl.source

  def _images(self, factors):
    return self._impl._images(factors)  # pylint: disable=protected-access
