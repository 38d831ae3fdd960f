"""Plugin dataset names, resolved lazily for dlib's `dataset.name` binding.

One line per name: the module and the gin-configurable class that builds it.
The modules are imported when the plugin activates (their gin configurables
must exist before configs are parsed); building a dataset, which may build
cached assets, happens only when its name is asked for. `sbd_plugin.compat` plugs `get` into dlib's `dataset`
configurable, so these names work in train, postprocess, evaluate (also with
`dataset.name = "auto"`) and the visualisation scripts.
"""
import importlib
import os

PLUGIN_DATASETS = {
    "colored_sprites": ("sbd_plugin.datasets.sprites", "ColoredSprites"),
    "small_colored_sprites": ("sbd_plugin.datasets.sprites",
                              "SmallColoredSprites"),
    "colored_sprites_holdout_train": ("sbd_plugin.datasets.sprites",
                                      "HoldoutTrainColoredSprites"),
    "colored_sprites_holdout_test": ("sbd_plugin.datasets.sprites",
                                     "HoldoutTestColoredSprites"),
    "object_in_room": ("sbd_plugin.datasets.room", "ObjectInRoom"),
}

# dlib's own `shapes3d` reads an .npz that was never published; with DeepMind's
# real 3dshapes.h5 present we serve that name from the plugin's reader.
_SHAPES3D_NPZ = os.path.join(
    "3dshapes",
    "look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi"
    ".npz")
_SHAPES3D_H5 = os.path.join("3dshapes", "3dshapes.h5")


def _data_path(relative):
  root = os.environ.get("DISENTANGLEMENT_LIB_DATA", ".")
  return os.path.join(root, relative)


def import_dataset_modules():
  """Imports every dataset module, registering their gin configurables."""
  for module_name in sorted({m for m, _ in PLUGIN_DATASETS.values()}):
    importlib.import_module(module_name)


def is_plugin_name(name):
  """Returns True if `name` is built by the plugin rather than by dlib."""
  if name in PLUGIN_DATASETS:
    return True
  return (name == "shapes3d" and not os.path.exists(_data_path(_SHAPES3D_NPZ))
          and os.path.exists(_data_path(_SHAPES3D_H5)))


def get(name):
  """Builds the plugin dataset called `name` (see `is_plugin_name`).

  Args:
    name: String, a key of PLUGIN_DATASETS or "shapes3d".

  Returns:
    A dlib GroundTruthData instance configured by its gin bindings.
  """
  if name == "shapes3d":
    from sbd_plugin.datasets import room  # pylint: disable=g-import-not-at-top
    return room.RealShapes3D(_data_path(_SHAPES3D_H5))
  module_name, class_name = PLUGIN_DATASETS[name]
  return getattr(importlib.import_module(module_name), class_name)()
