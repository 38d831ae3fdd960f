"""What hooks the plugin's features into disentanglement_lib 1.5.

Each hook is one function and one line of `HOOKS` (the same FixInfo records
as `stack_fixes.FIXES`), naming the dlib file it hooks into and why. They run
after the stack fixes: dlib's modules only import once those are in place.
"""
import importlib

from sbd_plugin.dlib_bridge import gin_wrappers
from sbd_plugin.dlib_bridge import stack_fixes

# Modules whose gin configurables dlib configs may name (the dataset modules
# come from the registry's table). A new decoder's module goes here.
CONFIGURABLE_MODULES = ("sbd_plugin.architectures",
                        "sbd_plugin.datasets.pipeline")


# --- plugin datasets behind dlib's `dataset` configurable --------------------


def _dataset_dispatcher(stock_fn):
  """Returns a drop-in for named_data's undecorated dataset function."""
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top

  def get_named_ground_truth_data(name):
    return registry.build(name, stock_fn)

  get_named_ground_truth_data.stock_fn = stock_fn
  return get_named_ground_truth_data


def _install_dataset_dispatch():
  """Routes plugin names through dlib's own gin wrapper of `dataset`.

  Callers look up named_data.get_named_ground_truth_data at call time and gin
  records `dataset.name` in the operative config that postprocess/evaluate read
  back for "auto", so the gin wrapper must stay: we swap the function inside.
  """
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  gin_wrappers.wrap_inner(named_data.get_named_ground_truth_data,
                          _dataset_dispatcher, "sbd_dispatch")


# --- batched, prefetched training input --------------------------------------


def _install_batched_input():
  """dlib's input yields one image per Python call (util.py); batch it."""
  from disentanglement_lib.data.ground_truth import util  # pylint: disable=g-import-not-at-top
  from sbd_plugin.datasets import pipeline  # pylint: disable=g-import-not-at-top
  if getattr(util.tf_data_set_from_ground_truth_data, "stock_fn", None):
    return
  util.tf_data_set_from_ground_truth_data = pipeline.make_tf_data_set_fn(
      util.tf_data_set_from_ground_truth_data)


# --- the plugin's gin configurables ------------------------------------------


def _register_plugin_configurables():
  """Imports the modules whose configurables dlib configs may name.

  Dataset modules are imported here, not when a name is first resolved: gin
  must know `colored_sprites.*` before parsing bindings, and refuses new
  configurables once dlib has locked the config.
  """
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top
  for module_name in CONFIGURABLE_MODULES:
    importlib.import_module(module_name)
  registry.import_dataset_modules()


def _install_resumable_training():
  from sbd_plugin.dlib_bridge import resumable_train  # pylint: disable=g-import-not-at-top
  resumable_train.install()


# Applied in this order, after the stack fixes (see `dlib_bridge.activate`).
HOOKS = (
    stack_fixes.FixInfo(
        "dataset_dispatch", ["data/ground_truth/named_data.py"],
        "dataset names are a hard-coded if/elif chain; add the plugin's",
        _install_dataset_dispatch),
    stack_fixes.FixInfo(
        "batched_input", ["data/ground_truth/util.py"],
        "one Python call per image caps training at ~85 steps/s",
        _install_batched_input),
    stack_fixes.FixInfo(
        "plugin_configurables", ["methods/shared/architectures.py"],
        "make @spatial_broadcast_decoder & co. bindable in any dlib config",
        _register_plugin_configurables),
    stack_fixes.FixInfo(
        "resumable_training", ["methods/unsupervised/train.py"],
        "dlib's train deletes or refuses a model folder: the study runner "
        "resumes from its newest checkpoint instead", _install_resumable_training),
)
