"""Every adaptation of disentanglement_lib 1.5 to Python 3.11 / TF 2.15.

This is the only module of the plugin that touches dlib's internals. dlib's
installed files are never edited: each fix below patches a module attribute or
installs a shim from outside, names the dlib file it fixes and says why. To
drop a fix (say a dlib release makes it unnecessary), delete its line from
`FIXES`.

`activate()` runs automatically right after the `disentanglement_lib` package
is imported (see `_sbd_plugin_hook.py`, installed as a `.pth` file), before any
dlib submodule loads, so the stock `dlib_*` scripts pick the fixes up too.
"""
import collections
import logging
import sys
import types

import gin

FixInfo = collections.namedtuple("FixInfo", ["name", "dlib_files", "why",
                                             "apply"])

# dlib 1.5's hard-coded dataset names (disentanglement_lib/data/ground_truth/
# named_data.py). Listed here so an unknown name can be reported with them.
STOCK_DATASETS = (
    "dsprites_full", "dsprites_noshape", "color_dsprites", "noisy_dsprites",
    "scream_dsprites", "smallnorb", "cars3d", "mpi3d_toy", "mpi3d_realistic",
    "mpi3d_real", "shapes3d", "dummy_data")

_ACTIVE = []


# --- Fix 1: tf.contrib is gone ------------------------------------------------


def _assign_from_checkpoint_fn(model_path, var_list, ignore_missing_vars=False,
                               reshape_variables=False):
  """TF 2.x version of tf.contrib.framework.assign_from_checkpoint_fn.

  Args:
    model_path: Checkpoint path to restore from.
    var_list: Dict from checkpoint names to variables, or list of variables.
    ignore_missing_vars: Skip variables that are not in the checkpoint.
    reshape_variables: Allow restoring tensors of a different shape.

  Returns:
    A callable taking a session that restores the variables into it.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  if ignore_missing_vars:
    reader = tf.train.NewCheckpointReader(model_path)
    if isinstance(var_list, dict):
      var_list = {k: v for k, v in var_list.items() if reader.has_tensor(k)}
    else:
      var_list = [v for v in var_list if reader.has_tensor(v.op.name)]
  saver = tf.train.Saver(var_list, reshape=reshape_variables)

  def callback(session):
    saver.restore(session, model_path)

  return callback


def _install_tf_contrib_shim():
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  contrib = types.ModuleType("tensorflow.contrib")
  contrib.__doc__ = "sbd_plugin shim for the parts of tf.contrib dlib uses."
  tpu = types.ModuleType("tensorflow.contrib.tpu")
  for name in ("RunConfig", "TPUConfig", "TPUEstimator", "TPUEstimatorSpec"):
    setattr(tpu, name, getattr(tf.estimator.tpu, name))
  framework = types.ModuleType("tensorflow.contrib.framework")
  framework.assign_from_checkpoint_fn = _assign_from_checkpoint_fn
  contrib.tpu, contrib.framework = tpu, framework
  sys.modules.update({"tensorflow.contrib": contrib,
                      "tensorflow.contrib.tpu": tpu,
                      "tensorflow.contrib.framework": framework})


# --- Fix 2: TF1 graph mode -----------------------------------------------------


def _install_graph_mode():
  """dlib 1.5 is TF1 code: sessions, placeholders, tf.train optimizers.

  TF 2.x executes eagerly by default; dlib's trainer builds its own graphs
  through the Estimator and is unaffected, but its library functions and
  shipped tests expect TF1's graph mode.
  """
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  tf.disable_eager_execution()


# --- Fix 3: gin renamed whitelist/blacklist ------------------------------------


def _translate_gin_keywords(fn):
  """Wraps a gin decorator factory to accept the pre-0.5 keyword names."""

  def wrapper(*args, **kwargs):
    if "whitelist" in kwargs:
      kwargs["allowlist"] = kwargs.pop("whitelist")
    if "blacklist" in kwargs:
      kwargs["denylist"] = kwargs.pop("blacklist")
    return fn(*args, **kwargs)

  wrapper.__wrapped__ = fn
  wrapper.__doc__ = fn.__doc__
  return wrapper


def _install_gin_keyword_shim():
  for name in ("configurable", "external_configurable"):
    original = getattr(gin, name)
    if not hasattr(original, "__wrapped__"):
      patched = _translate_gin_keywords(original)
      setattr(gin, name, patched)
      setattr(gin.config, name, patched)


# --- Fix 4: plugin datasets behind dlib's `dataset` configurable ---------------


def _dataset_dispatcher(stock_fn):
  """Returns a drop-in for named_data's undecorated dataset function."""
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top

  def get_named_ground_truth_data(name):
    if registry.is_plugin_name(name):
      return registry.get(name)
    if name in STOCK_DATASETS:
      return stock_fn(name)
    valid = sorted(set(STOCK_DATASETS) | set(registry.PLUGIN_DATASETS))
    raise ValueError(
        "Unknown dataset name %r. Set `dataset.name` to one of: %s." %
        (name, ", ".join(valid)))

  get_named_ground_truth_data.stock_fn = stock_fn
  return get_named_ground_truth_data


def _install_dataset_dispatch():
  """Routes plugin names through dlib's own gin wrapper of `dataset`.

  Callers look up named_data.get_named_ground_truth_data at call time and gin
  records `dataset.name` in the operative config that postprocess/evaluate read
  back for "auto", so the gin wrapper must stay. We swap the function it wraps
  (a closure cell of gin 0.5's `_make_gin_wrapper`).
  """
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  wrapper = named_data.get_named_ground_truth_data
  cell = dict(zip(wrapper.__code__.co_freevars, wrapper.__closure__))["fn"]
  if getattr(cell.cell_contents, "stock_fn", None) is not None:
    return
  if cell.cell_contents is not wrapper.__wrapped__:
    raise RuntimeError("gin's wrapper of dlib's `dataset` has an unexpected "
                       "layout; sbd_plugin supports gin-config 0.5.0.")
  cell.cell_contents = _dataset_dispatcher(cell.cell_contents)


# --- Fix 5: dlib_visualize_model's GIFs ---------------------------------------


def _to_uint8_frames(images):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return [np.asarray(np.clip(np.asarray(i) * 255.0 + 0.5, 0, 255), np.uint8)
          if np.asarray(i).dtype != np.uint8 else np.asarray(i)
          for i in images]


def _install_save_animation_fix():
  """imageio>=2.28 with Pillow rejects float frames; dlib passes floats."""
  import imageio  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.visualize import visualize_util  # pylint: disable=g-import-not-at-top

  def save_animation(list_of_animated_images, image_path, fps):
    full_size_images = []
    for single_images in zip(*list_of_animated_images):
      full_size_images.append(visualize_util.pad_around(
          visualize_util.add_below(
              visualize_util.padded_grid(list(single_images)))))
    # GIF wants a frame duration in ms; `fps` was removed from imageio's v3
    # Pillow plugin. loop=0 keeps dlib's looping animations.
    imageio.mimwrite(image_path, _to_uint8_frames(full_size_images),
                     duration=1000.0 / fps, loop=0)

  save_animation.sbd_plugin_fix = True
  visualize_util.save_animation = save_animation


# --- Fix 6: batched, prefetched training input --------------------------------


def _install_batched_input():
  """dlib's input yields one image per Python call (util.py); batch it."""
  from disentanglement_lib.data.ground_truth import util  # pylint: disable=g-import-not-at-top
  from sbd_plugin.datasets import pipeline  # pylint: disable=g-import-not-at-top
  if getattr(util.tf_data_set_from_ground_truth_data, "stock_fn", None):
    return
  util.tf_data_set_from_ground_truth_data = pipeline.make_tf_data_set_fn(
      util.tf_data_set_from_ground_truth_data)


# --- Fix 7: the plugin's gin configurables ------------------------------------


def _register_plugin_configurables():
  """Imports the modules whose configurables dlib configs may name.

  Dataset modules are imported here, not when a name is first resolved: gin
  must know `colored_sprites.*` before parsing bindings, and refuses new
  configurables once dlib has locked the config.
  """
  import sbd_plugin.architectures  # pylint: disable=g-import-not-at-top,unused-import
  import sbd_plugin.datasets.pipeline  # pylint: disable=g-import-not-at-top,unused-import
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top
  registry.import_dataset_modules()


FIXES = (
    FixInfo("tf_contrib", ["methods/unsupervised/train.py",
                           "methods/unsupervised/vae.py",
                           "utils/convolute_hub.py",
                           "evaluation/abstract_reasoning/*.py"],
            "tf.contrib was removed in TF 2.0; TPUEstimator & co. live in "
            "tf.compat.v1.estimator.tpu", _install_tf_contrib_shim),
    FixInfo("graph_mode", ["every module using tf.Session / tf.placeholder",
                           "and the shipped *_test.py modules"],
            "TF 2.x runs eagerly by default; dlib 1.5 is TF1 graph-mode code",
            _install_graph_mode),
    FixInfo("gin_keywords", ["67 @gin.configurable(..., whitelist/blacklist)"],
            "gin-config 0.5 only accepts allowlist/denylist; 0.4 does not "
            "import on Python >= 3.10", _install_gin_keyword_shim),
    FixInfo("dataset_dispatch", ["data/ground_truth/named_data.py"],
            "dataset names are a hard-coded if/elif chain; add the plugin's",
            _install_dataset_dispatch),
    FixInfo("save_animation", ["visualize/visualize_util.py"],
            "current imageio/Pillow reject float frames and the fps keyword",
            _install_save_animation_fix),
    FixInfo("batched_input", ["data/ground_truth/util.py"],
            "one Python call per image caps training at ~85 steps/s",
            _install_batched_input),
    FixInfo("plugin_configurables", ["methods/shared/architectures.py"],
            "make @spatial_broadcast_decoder & co. bindable in any dlib config",
            _register_plugin_configurables),
)


def activate():
  """Checks the stack, then applies every fix in FIXES once per process.

  Returns:
    List of the names of the applied fixes.
  """
  if not _ACTIVE:
    from sbd_plugin import versions  # pylint: disable=g-import-not-at-top
    for warning in versions.check_stack():
      logging.warning("sbd_plugin: %s", warning)
    for fix in FIXES:
      fix.apply()
      _ACTIVE.append(fix.name)
    logging.debug("sbd_plugin compat fixes active: %s", _ACTIVE)
  return list(_ACTIVE)
