"""Dataset names for dlib's `dataset.name`: one table, imported on use.

`PLUGIN_DATASETS` maps each plugin name to the gin-configurable class that
builds it, one line per name ("module:Class", modules relative to this
package). The table refuses a name twice or one of dlib's own, and imports
nothing until asked: `sbd_plugin.dlib_bridge` imports the dataset modules when
the plugin activates (their gin configurables must exist before configs are
parsed), and a dataset, which may build cached assets, is built only when its
name is asked for.

This module owns the names: `build` serves dlib's `dataset` configurable
(through `sbd_plugin.dlib_bridge`), so these names work in train,
postprocess, evaluate (also with `dataset.name = "auto"`) and the
visualisation scripts, and an unknown name fails here with the valid ones.
"""
import os

from sbd_plugin import lazy_table
from sbd_plugin.datasets import data_dir

# dlib 1.5's hard-coded dataset names (disentanglement_lib/data/ground_truth/
# named_data.py), built by dlib itself; listed so an unknown name can be
# reported with them and no plugin name shadows one.
STOCK_DATASETS = (
    "dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites",
    "scream_dsprites", "smallnorb", "cars3d", "mpi3d_toy", "mpi3d_realistic",
    "mpi3d_real", "shapes3d", "dummy_data")


class Registry(lazy_table.LazyTable):
  """Dataset names -> "module:Class"; "." modules are in this package."""

  def __init__(self, taken, entries):
    super().__init__("Dataset", entries, taken=taken, package=__package__)


PLUGIN_DATASETS = Registry(STOCK_DATASETS, [
    ("colored_sprites", ".colored_sprites:ColoredSprites"),
    ("small_colored_sprites", ".colored_sprites:SmallColoredSprites"),
    ("colored_sprites_holdout_train", ".holdout:HoldoutTrainColoredSprites"),
    ("colored_sprites_holdout_test", ".holdout:HoldoutTestColoredSprites"),
    ("object_in_room", ".room:ObjectInRoom"),
])


def import_dataset_modules():
  """Imports every dataset module, registering their gin configurables."""
  for module_name in PLUGIN_DATASETS.modules():
    PLUGIN_DATASETS.import_module(module_name)


def is_plugin_name(name):
  """Returns True if `name` is built by the plugin rather than by dlib.

  dlib's own `shapes3d` reads an .npz that was never published; with
  DeepMind's real 3dshapes.h5 present (and no such .npz) the plugin serves
  that name from its reader.
  """
  if name in PLUGIN_DATASETS:
    return True
  return (name == "shapes3d" and
          not os.path.exists(data_dir.path(data_dir.SHAPES3D_NPZ)) and
          os.path.exists(data_dir.path(data_dir.SHAPES3D_H5)))


def get(name):
  """Builds the plugin dataset called `name` (see `is_plugin_name`).

  Args:
    name: String, a key of PLUGIN_DATASETS or "shapes3d".

  Returns:
    A dlib GroundTruthData instance configured by its gin bindings.
  """
  if name == "shapes3d":
    from sbd_plugin.datasets import room  # pylint: disable=g-import-not-at-top
    return room.RealShapes3D(data_dir.path(data_dir.SHAPES3D_H5))
  return PLUGIN_DATASETS.load(name)()


def build(name, stock_fn):
  """Builds the dataset `name`, the plugin's or (by `stock_fn`) dlib's.

  Args:
    name: String, the value of dlib's `dataset.name`.
    stock_fn: dlib's own function from a stock name to its dataset.

  Returns:
    A dlib GroundTruthData instance.

  Raises:
    ValueError: listing the valid names, for a name neither side knows.
  """
  if is_plugin_name(name):
    return get(name)
  if name in STOCK_DATASETS:
    return stock_fn(name)
  valid = sorted(set(STOCK_DATASETS) | set(PLUGIN_DATASETS))
  raise ValueError("Unknown dataset name %r. Set `dataset.name` to one of: %s."
                   % (name, ", ".join(valid)))
