"""The pinned stack dlib's numbers depend on, and the versions actually used.

Pure standard library on purpose: setup.py reads NUMERIC_PINS from this file
without importing the package.
"""
import importlib.metadata
import platform
import sys

# The two locked stacks, picked by the Python version (scripts/bootstrap.sh
# does the same): each has its lock file, its exact pins of what metric values
# depend on (scikit-learn changes MIG between releases, upstream dlib issue;
# setup.py pins exactly these) and the series without which the plugin cannot
# run at all (API differences, not numbers).
STACKS = {
    "py311-tf2.15": {
        "lock": "requirements/lock.txt",
        "pins": {
            "tensorflow": "2.15.1",
            "tensorflow-probability": "0.23.0",
            "tensorflow-hub": "0.15.0",
            "gin-config": "0.5.0",
            "numpy": "1.26.4",
            "scikit-learn": "1.5.2",
            "scipy": "1.13.1",
        },
        "series": {"tensorflow": "2.15.", "tensorflow-probability": "0.23.",
                   "gin-config": "0.5."},
    },
    "py312-tf2.21": {
        "lock": "requirements/lock-py312.txt",
        "pins": {
            "tensorflow": "2.21.0",
            "tf-keras": "2.21.0",
            "tensorflow-probability": "0.25.0",
            "tensorflow-hub": "0.15.0",
            "gin-config": "0.5.0",
            "numpy": "2.2.6",
            "scikit-learn": "1.5.2",
            "scipy": "1.14.1",
        },
        # tensorflow-hub 0.16 dropped the TF1 hub.Module API dlib uses.
        "series": {"tensorflow": "2.21.", "tf-keras": "2.21.",
                   "tensorflow-hub": "0.15.", "gin-config": "0.5."},
    },
}


def stack_for_python(version_info=None):
  """The stack's name for a Python version (3.11: TF 2.15; 3.12+: TF 2.21)."""
  version_info = version_info or sys.version_info
  return "py311-tf2.15" if tuple(version_info[:2]) < (3, 12) else "py312-tf2.21"


STACK = stack_for_python()
LOCK_FILE = STACKS[STACK]["lock"]
NUMERIC_PINS = STACKS[STACK]["pins"]
# Installed with --no-deps by scripts/bootstrap.sh (its metadata pins TF 1.14).
DLIB_VERSION = "1.5"
_REQUIRED_SERIES = STACKS[STACK]["series"]
_RECORDED = tuple(NUMERIC_PINS) + tuple(
    name for name in ("disentanglement-lib", "sbd_plugin", "pandas",
                      "tensorflow-estimator", "tf-keras")
    if name not in NUMERIC_PINS)


def _version(distribution):
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


def library_versions():
  """Returns the versions to record with every result.

  Returns:
    Dict from distribution name (plus "python", and "stack": the locked
    stack's name, see STACKS) to version string, None for a distribution that
    is not installed.
  """
  versions = {"python": platform.python_version(), "stack": STACK}
  for name in _RECORDED:
    versions[name] = _version(name)
  return versions


def check_stack():
  """Raises ImportError if the installed stack cannot run dlib via the plugin.

  Returns:
    List of warnings (strings) for pinned libraries at other versions, which
    run but may change metric values.
  """
  for name, series in _REQUIRED_SERIES.items():
    found = _version(name)
    if found is None or not found.startswith(series):
      raise ImportError(
          "sbd_plugin needs %s %s*, found %s. Run scripts/bootstrap.sh (or "
          "`pip install -r %s`) in this environment." %
          (name, series, found, LOCK_FILE))
  found = {name: _version(name) for name in NUMERIC_PINS}
  return ["%s is %s, pinned %s: metric values may differ from recorded "
          "results." % (name, found[name], pin)
          for name, pin in NUMERIC_PINS.items() if found[name] != pin]
