"""sbd_plugin: Spatial Broadcast decoders and the paper's datasets for dlib.

Importing this package (or anything from disentanglement_lib, once the plugin
is installed) activates the compatibility layer in `sbd_plugin.compat`, which
also registers the plugin's gin configurables and dataset names with dlib.

Layout: `compat` (all of dlib's adaptation), `architectures` (decoders and
encoders), `datasets/` (generated datasets, registry, input pipeline),
`versions` (the library versions recorded with every result).
"""
import disentanglement_lib  # pylint: disable=unused-import
from sbd_plugin import compat

compat.activate()

# pylint: disable=g-import-not-at-top,wrong-import-position
from sbd_plugin.architectures import paper_conv_encoder
from sbd_plugin.architectures import paper_deconv_decoder
from sbd_plugin.architectures import spatial_broadcast_decoder
from sbd_plugin.datasets.registry import PLUGIN_DATASETS

__version__ = "0.1.0"
__all__ = ["spatial_broadcast_decoder", "paper_conv_encoder",
           "paper_deconv_decoder", "PLUGIN_DATASETS", "compat"]
