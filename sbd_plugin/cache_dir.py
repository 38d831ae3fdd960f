"""Where the plugin keeps what it can rebuild: $SBD_PLUGIN_CACHE or ~/.cache/sbd_plugin.

Light (standard library only), so that the runner and `sbd_study plan` can use
it without loading numpy, dlib or TensorFlow.
"""
import os


def cache_root():
  """Returns the cache folder: $SBD_PLUGIN_CACHE or ~/.cache/sbd_plugin."""
  root = os.environ.get("SBD_PLUGIN_CACHE")
  if not root:
    root = os.path.join(os.path.expanduser("~"), ".cache", "sbd_plugin")
  return root
