"""On-disk cache for generated dataset assets, verified before every use.

Generated assets (sprite masks, rendered room layers) are written once into a
folder of `.npy` files plus a `manifest.json` holding each file's SHA-256,
shape and dtype. A cache is only trusted when the manifest and every hash
match; a corrupt or partial cache is rebuilt, never read. Arrays are opened
memory-mapped, so many processes share one copy in the page cache.
"""
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from sbd_plugin import atomic
from sbd_plugin.cache_dir import cache_root

_MANIFEST = "manifest.json"


def file_sha256(path):
  """SHA-256 of a file (hex)."""
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


_sha256 = file_sha256


def checksum(name):
  """One SHA-256 for the cached asset `name`: over its manifest's checksums.

  Call after `load_or_build(name, ...)`, which verified every array against
  those checksums.

  Returns:
    Hex string, None if the asset has no manifest.
  """
  try:
    with open(os.path.join(cache_root(), name, _MANIFEST)) as f:
      arrays = json.load(f)["arrays"]
  except (OSError, ValueError, KeyError, TypeError):
    return None
  digests = {key: meta["sha256"] for key, meta in arrays.items()}
  return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()
                        ).hexdigest()


def _verify(folder, version):
  """Returns None if `folder` is a complete cache of `version`, else why not."""
  manifest_path = os.path.join(folder, _MANIFEST)
  if not os.path.exists(manifest_path):
    return "no manifest"
  try:
    with open(manifest_path) as f:
      manifest = json.load(f)
  except ValueError as e:
    return "unreadable manifest (%s)" % e
  if not isinstance(manifest, dict):
    return "manifest is not a JSON object"
  if manifest.get("version") != version:
    return "version %r, expected %r" % (manifest.get("version"), version)
  arrays = manifest.get("arrays")
  if not isinstance(arrays, dict) or not all(
      isinstance(meta, dict) and "sha256" in meta for meta in arrays.values()):
    return "manifest lacks its array checksums"
  for key, meta in arrays.items():
    path = os.path.join(folder, key + ".npy")
    if not os.path.exists(path):
      return "missing %s" % path
    if _sha256(path) != meta["sha256"]:
      return "checksum mismatch in %s" % path
  return None


@functools.lru_cache(maxsize=None)
def _load_verified(folder, version):
  problem = _verify(folder, version)
  if problem is not None:
    return None, problem
  with open(os.path.join(folder, _MANIFEST)) as f:
    keys = sorted(json.load(f)["arrays"])
  arrays = {k: np.load(os.path.join(folder, k + ".npy"), mmap_mode="r")
            for k in keys}
  return arrays, None


def load_or_build(name, version, build_fn):
  """Returns the cached arrays of `name`, building them first if needed.

  Args:
    name: String, the asset's folder name inside the cache root.
    version: String that changes whenever build_fn's output would change.
    build_fn: Callable with no arguments returning a dict of numpy arrays.

  Returns:
    Dict from array name to a read-only memory-mapped numpy array.
  """
  folder = os.path.join(cache_root(), name)
  arrays, problem = _load_verified(folder, version)
  if arrays is not None:
    return arrays
  os.makedirs(cache_root(), exist_ok=True)
  # Parallel study runs may all miss the cache at once: one builds, the others
  # wait and then use its result.
  with open(folder + ".lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    _load_verified.cache_clear()
    arrays, problem = _load_verified(folder, version)
    if arrays is not None:
      return arrays
    _load_verified.cache_clear()
    _remove_stale_builds(folder)
    if problem != "no manifest" or os.path.exists(folder):
      logging.warning("Rebuilding dataset cache %s: %s.", folder, problem)
    else:
      logging.info("Building dataset cache %s (first use).", folder)
    _write(folder, version, build_fn())
    arrays, problem = _load_verified(folder, version)
  if arrays is None:
    raise IOError("Dataset cache %s failed verification right after being "
                  "built (%s); check the disk or set SBD_PLUGIN_CACHE to "
                  "another folder." % (folder, problem))
  return arrays


def _remove_stale_builds(folder):
  """Removes temporary folders of builds that were killed mid-write.

  Called while holding the build lock, so no live build is using them.
  """
  parent, prefix = os.path.dirname(folder), "." + os.path.basename(folder) + "."
  for name in os.listdir(parent):
    if name.startswith(prefix):
      logging.warning("Removing %s, left by a cache build that was killed.",
                      os.path.join(parent, name))
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def _write(folder, version, arrays):
  """Writes arrays and manifest to a temporary folder, then renames it."""
  parent = os.path.dirname(folder)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix="." + os.path.basename(folder) + ".",
                         dir=parent)
  try:
    # mkdtemp makes the folder private; the cache is shared like any folder.
    os.chmod(tmp, atomic.default_dir_mode())
    manifest = {"version": version, "arrays": {}}
    for key, value in arrays.items():
      path = os.path.join(tmp, key + ".npy")
      np.save(path, np.ascontiguousarray(value))
      manifest["arrays"][key] = {"sha256": _sha256(path),
                                 "shape": list(value.shape),
                                 "dtype": str(value.dtype)}
    # The folder becomes visible by one rename, manifest included; the
    # manifest itself is also written whole or not at all.
    atomic.write_json(os.path.join(tmp, _MANIFEST), manifest, indent=1)
    if os.path.exists(folder):
      shutil.rmtree(folder)
    os.replace(tmp, folder)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
