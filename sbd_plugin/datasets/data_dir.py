"""dlib's data folder and the real dataset files the plugin looks for in it.

dlib reads its datasets from $DISENTANGLEMENT_LIB_DATA (default: the working
directory); the plugin looks for DeepMind's real files at the same places.
"""
import os

# DeepMind's dSprites file, as dlib's `dsprites_full` reads it.
DSPRITES_NPZ = os.path.join(
    "dsprites", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")
# DeepMind's published 3dshapes file.
SHAPES3D_H5 = os.path.join("3dshapes", "3dshapes.h5")
# What dlib's own `shapes3d` reads: an .npz that was never published.
SHAPES3D_NPZ = os.path.join(
    "3dshapes",
    "look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi"
    ".npz")


def path(relative):
  """Returns `relative` inside dlib's data folder, resolved as dlib does.

  Args:
    relative: Path relative to the data folder (e.g. SHAPES3D_H5).

  Returns:
    $DISENTANGLEMENT_LIB_DATA/relative, read from the environment at call
    time (tests and studies point it elsewhere).
  """
  return os.path.join(os.environ.get("DISENTANGLEMENT_LIB_DATA", "."),
                      relative)
