"""dlib's data loaders never unpickle.

dlib's dSprites loader (data/ground_truth/dsprites.py) reads its .npz with
`allow_pickle=True`: a crafted file at the documented
`$DISENTANGLEMENT_LIB_DATA/dsprites/...npz` runs code when `dsprites_full` (or
any dSprites variant) is trained or evaluated. Every dlib loader that reads
numpy files sees, instead of numpy, `_NumpyWithoutPickle`: its `load` always
passes `allow_pickle=False` and turns numpy's refusal of an object array into
an error that says what to do. DeepMind's real dSprites file keeps working:
dlib reads only `metadata["latents_sizes"]` from its pickled metadata, and
those sizes are the number of classes per factor, which `latents_classes`
holds as plain integers.
"""
from sbd_plugin.dlib_bridge.stack_fixes import FixInfo

class UnsafeDataFileError(ValueError):
  """A data file holds pickled objects, which the plugin never loads."""


class _NpzWithoutObjects(object):
  """An .npz read with allow_pickle=False; dSprites' metadata rebuilt.

  DeepMind's dSprites file stores its `metadata` as a pickled dict, and
  dlib reads only `metadata["latents_sizes"]` from it; those sizes are
  the number of classes of each factor, which `latents_classes` holds as
  plain integers.
  """

  def __init__(self, npz, path):
    self._npz = npz
    self._path = path

  def __getitem__(self, key):
    import numpy  # pylint: disable=g-import-not-at-top
    if key == "metadata" and "latents_classes" in self._npz.files:
      sizes = numpy.asarray(self._npz["latents_classes"]).max(axis=0) + 1
      metadata = numpy.empty((), dtype=object)
      metadata[()] = {"latents_sizes": sizes}
      return metadata
    try:
      return self._npz[key]
    except ValueError as e:
      if "allow_pickle" not in str(e):
        raise
      raise UnsafeDataFileError(
          "%s: member %r is a pickled object array. sbd_plugin never "
          "unpickles data files (unpickling runs code). Re-save the file "
          "with plain arrays only (np.savez(path, name=array, ...))." % (
              self._path, key)) from None

  def __getattr__(self, name):
    return getattr(self._npz, name)

  def __contains__(self, key):
    return key in self._npz.files


class _NumpyWithoutPickle(object):
  """numpy as dlib's loader modules see it, with a `load` that never unpickles."""

  def __getattr__(self, name):
    import numpy  # pylint: disable=g-import-not-at-top
    return getattr(numpy, name)

  @staticmethod
  def load(file, mmap_mode=None, allow_pickle=False, **kwargs):  # pylint: disable=redefined-builtin
    import numpy  # pylint: disable=g-import-not-at-top
    del allow_pickle  # Whatever the caller asks for.
    path = getattr(file, "name", file)
    try:
      data = numpy.load(file, mmap_mode=mmap_mode, allow_pickle=False,
                        **kwargs)
    except ValueError as e:
      if "allow_pickle" not in str(e):
        raise
      raise UnsafeDataFileError(
          "%s is a pickled object array. sbd_plugin never unpickles data "
          "files (unpickling runs code): save plain arrays instead." % path
      ) from None
    if isinstance(data, numpy.lib.npyio.NpzFile):
      return _NpzWithoutObjects(data, path)
    return data


def _install_no_pickle_loaders():
  from disentanglement_lib.data.ground_truth import dsprites  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.data.ground_truth import mpi3d  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.data.ground_truth import shapes3d  # pylint: disable=g-import-not-at-top
  for module in (dsprites, mpi3d, shapes3d):
    if not isinstance(module.np, _NumpyWithoutPickle):
      module.np = _NumpyWithoutPickle()


FIXES = (
    FixInfo("no_pickle_loaders", ["data/ground_truth/dsprites.py",
                                  "data/ground_truth/mpi3d.py",
                                  "data/ground_truth/shapes3d.py"],
            "dsprites.py loads with allow_pickle=True: a crafted data file "
            "runs code", _install_no_pickle_loaders),
)
