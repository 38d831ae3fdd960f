"""sbd_plugin: Spatial Broadcast decoders and the paper's datasets for dlib.

Importing this package (or anything from disentanglement_lib, once the plugin
is installed) runs `sbd_plugin.dlib_bridge.activate()`, which adapts dlib to
the current stack and registers the plugin's gin configurables and dataset
names with dlib.

Layout: `dlib_bridge` (everything that touches dlib's internals),
`architectures` (decoders and encoders), `datasets/` (generated datasets,
registry, input pipeline), `scoring/` (`score`: dlib's metrics for any
model, ONNX files or functions), `versions` (the library versions recorded
with every result).
"""
import disentanglement_lib  # pylint: disable=unused-import
from sbd_plugin import dlib_bridge

# The import above activates through the hook; this covers SBD_PLUGIN_DISABLE=1
# and a dlib imported before the hook was installed.
dlib_bridge.activate()

# pylint: disable=g-import-not-at-top,wrong-import-position
from sbd_plugin.architectures import paper_conv_encoder
from sbd_plugin.architectures import paper_deconv_decoder
from sbd_plugin.architectures import spatial_broadcast_decoder
from sbd_plugin.datasets.registry import PLUGIN_DATASETS
from sbd_plugin.scoring import score

__version__ = "0.1.0"
__all__ = ["spatial_broadcast_decoder", "paper_conv_encoder",
           "paper_deconv_decoder", "PLUGIN_DATASETS", "dlib_bridge", "score"]
