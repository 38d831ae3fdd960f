"""The one place where sbd_plugin touches disentanglement_lib's internals.

`stack_fixes` adapts dlib 1.5 to Python 3.11+ / TF 2.15+ (its TPUEstimator
from `estimator_free`), `current_stack` to Python 3.12+ / TF 2.16+;
`reproducibility`
makes the same seed give the same numbers; `safe_loading` keeps dlib's data
loaders from unpickling; `missing_modules` explains the dlib commands whose
modules dlib's wheel lacks; `plugin_hooks` hooks the plugin's datasets, input
pipeline, gin configurables and resumable training (`resumable_train`) into
dlib. All patch dlib from outside (its installed files are never edited), one
function per fix, each naming the dlib file it fixes and why.

`activate()` is the only entry point. It runs right after the
`disentanglement_lib` package is imported (see `_sbd_plugin_hook.py`, installed
as a `.pth` file), before any dlib submodule loads, so the stock `dlib_*`
scripts pick the fixes up too; importing `sbd_plugin.datasets` calls it as
well. Importing this package is cheap: the fixes import dlib and TensorFlow
only when applied.
"""
import logging

from sbd_plugin import versions
from sbd_plugin.dlib_bridge import current_stack
from sbd_plugin.dlib_bridge import missing_modules
from sbd_plugin.dlib_bridge import parallel_metrics
from sbd_plugin.dlib_bridge import plugin_hooks
from sbd_plugin.dlib_bridge import reproducibility
from sbd_plugin.dlib_bridge import safe_loading
from sbd_plugin.dlib_bridge import stack_fixes

# Every fix, in the order `activate` applies them.
FIXES = (missing_modules.FIXES + current_stack.FIRST + stack_fixes.FIXES +
         current_stack.FIXES + reproducibility.FIXES + parallel_metrics.FIXES +
         stack_fixes.METRIC_FIXES + safe_loading.FIXES + plugin_hooks.HOOKS)

_ACTIVE = []
_STARTED = []  # Set on entry: a nested call (an import during a fix) returns.


def activate():
  """Checks the stack, then applies every fix in FIXES once per process.

  Returns:
    List of the names of the applied fixes.

  Raises:
    ImportError: if the installed stack cannot run dlib (see
      `versions.check_stack`).
  """
  # With the hook installed, a first import of dlib activates right here
  # (a nested call); the fixes must find dlib's package imported in any case.
  import disentanglement_lib  # pylint: disable=g-import-not-at-top,unused-import
  if not _STARTED:
    for warning in versions.check_stack():
      logging.warning("sbd_plugin: %s", warning)
    _STARTED.append(True)
    for fix in FIXES:
      fix.apply()
      _ACTIVE.append(fix.name)
    logging.debug("sbd_plugin dlib_bridge fixes active: %s", _ACTIVE)
  return list(_ACTIVE)
