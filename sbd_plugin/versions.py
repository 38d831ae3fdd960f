"""The pinned stack dlib's numbers depend on, and the versions actually used.

Pure standard library on purpose: setup.py reads NUMERIC_PINS from this file
without importing the package.
"""
import importlib.metadata
import platform

# What metric values depend on (scikit-learn changes MIG between releases,
# upstream dlib issue); setup.py pins exactly these.
NUMERIC_PINS = {
    "tensorflow": "2.15.1",
    "tensorflow-probability": "0.23.0",
    "tensorflow-hub": "0.15.0",
    "gin-config": "0.5.0",
    "numpy": "1.26.4",
    "scikit-learn": "1.5.2",
    "scipy": "1.13.1",
}
# Installed with --no-deps by scripts/bootstrap.sh (its metadata pins TF 1.14).
DLIB_VERSION = "1.5"
# Without these the plugin cannot run at all (API differences, not numbers).
_REQUIRED_SERIES = {"tensorflow": "2.15.", "tensorflow-probability": "0.23.",
                    "gin-config": "0.5."}
_RECORDED = tuple(NUMERIC_PINS) + ("disentanglement-lib", "sbd_plugin",
                                   "pandas", "tensorflow-estimator")


def _version(distribution):
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return None


def library_versions():
  """Returns the versions to record with every result.

  Returns:
    Dict from distribution name (plus "python") to version string, None for
    a distribution that is not installed.
  """
  versions = {"python": platform.python_version()}
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
          "`pip install -r requirements/lock.txt`) in this environment." %
          (name, series, found))
  found = {name: _version(name) for name in NUMERIC_PINS}
  return ["%s is %s, pinned %s: metric values may differ from recorded "
          "results." % (name, found[name], pin)
          for name, pin in NUMERIC_PINS.items() if found[name] != pin]
