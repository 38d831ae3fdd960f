"""A clear message for the dlib commands whose modules dlib 1.5 does not ship.

disentanglement-lib 1.5 from PyPI installs every script of its setup.py, but
its wheel lacks the weakly-supervised, semi-supervised, validation and UDR
packages those scripts import (they are only in the GitHub repository): run
as shipped, `dlib_udr` and friends die with a bare ModuleNotFoundError. A
last-resort import finder, added when the plugin activates, turns an import
of one of those packages (after every other finder failed) into an error that
says what is missing and where it is; run from one of those commands it ends
the command with that message instead of a traceback.
"""
import importlib.abc
import os
import sys

from sbd_plugin.dlib_bridge.stack_fixes import FixInfo

SOURCE = "https://github.com/google-research/disentanglement_lib"
# dlib packages missing from the 1.5 wheel -> the installed commands needing them.
MISSING = {
    "disentanglement_lib.methods.weak": (
        "dlib_train_weakly_supervised", "dlib_reproduce_weakly_supervised"),
    "disentanglement_lib.methods.semi_supervised": (
        "dlib_train_semi_supervised", "dlib_reproduce_semi_supervised"),
    "disentanglement_lib.validation": ("dlib_reproduce_semi_supervised",),
    "disentanglement_lib.evaluation.udr": ("dlib_udr",),
}


class NotShippedError(ModuleNotFoundError):
  """A dlib module that the PyPI release of dlib 1.5 does not contain."""


def message(package, command=None):
  """What to tell the user about the missing `package`."""
  return (
      "%s needs %s, which disentanglement-lib 1.5 from PyPI does not ship: its "
      "wheel installs the commands %s but not their modules (weakly- and "
      "semi-supervised training, validation and UDR are only in the GitHub "
      "repository, %s). sbd_plugin supports dlib's unsupervised pipeline "
      "(dlib_train, dlib_postprocess, dlib_evaluate, dlib_reproduce, "
      "dlib_aggregate_results, dlib_visualize_*); for these, install dlib "
      "from that repository (untested with this plugin)." % (
          command or "This import", package, ", ".join(MISSING[package]),
          SOURCE))


def _package(fullname):
  for package in MISSING:
    if fullname == package or fullname.startswith(package + "."):
      return package
  return None


class _NotShippedFinder(importlib.abc.MetaPathFinder):
  """Last on sys.meta_path: reached only when no finder found the module."""

  def find_spec(self, fullname, path, target=None):
    package = _package(fullname)
    if package is None:
      return None
    command = os.path.basename(sys.argv[0]) if sys.argv else ""
    if command in MISSING[package]:
      raise SystemExit("%s: error: %s" % (command, message(package, command)))
    raise NotShippedError(message(package), name=fullname)


def install():
  """Appends the finder once (modules that do exist are found before it)."""
  if not any(isinstance(f, _NotShippedFinder) for f in sys.meta_path):
    sys.meta_path.append(_NotShippedFinder())


FIXES = (
    FixInfo("not_shipped_modules",
            ["bin/dlib_udr", "bin/dlib_train_weakly_supervised",
             "bin/dlib_train_semi_supervised"],
            "dlib 1.5's wheel installs these commands without their modules: "
            "say so instead of a bare ModuleNotFoundError", install),
)
