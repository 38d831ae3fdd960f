"""sbd_plugin: Spatial Broadcast decoders and the paper's datasets for dlib.

Importing this package is cheap: it imports neither dlib nor TensorFlow, so
the study runner and the light modules (`atomic`, `machine`, `versions`)
start fast. dlib is adapted by `sbd_plugin.dlib_bridge.activate()`, which the
import hook (`_sbd_plugin_hook.py`, installed as `sbd_plugin.pth`) runs as
soon as anything imports `disentanglement_lib`; importing
`sbd_plugin.datasets` or one of the names below runs it too (that also covers
SBD_PLUGIN_DISABLE=1 and a dlib imported before the hook was installed).

Layout: `dlib_bridge` (everything that touches dlib's internals),
`architectures` (decoders and encoders), `datasets/` (generated datasets,
registry, input pipeline), `scoring/` (`score`: dlib's metrics for any
model, ONNX files or functions), `versions` (the library versions recorded
with every result).
"""
import importlib

__version__ = "0.1.0"
# Name -> the module it lives in, imported on first use (PEP 562).
_LAZY = {
    "spatial_broadcast_decoder": "sbd_plugin.architectures",
    "paper_conv_encoder": "sbd_plugin.architectures",
    "paper_deconv_decoder": "sbd_plugin.architectures",
    "PLUGIN_DATASETS": "sbd_plugin.datasets.registry",
    "score": "sbd_plugin.scoring",
}
__all__ = ["spatial_broadcast_decoder", "paper_conv_encoder",
           "paper_deconv_decoder", "PLUGIN_DATASETS", "dlib_bridge",
           "score"]


def __getattr__(name):
  if name == "dlib_bridge":
    return importlib.import_module("sbd_plugin.dlib_bridge")
  if name not in _LAZY:
    raise AttributeError("module 'sbd_plugin' has no attribute %r" % name)
  # The configurables are meant for dlib's configs: adapt dlib first.
  importlib.import_module("sbd_plugin.dlib_bridge").activate()
  return getattr(importlib.import_module(_LAZY[name]), name)
