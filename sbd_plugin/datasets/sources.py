"""Where the images of the datasets built in this process came from.

Each dataset records its source when it is built: DeepMind's real file (its
real path and SHA-256) or the built-in generator (the generator, the cache
version and the cache's checksum, from the SHA-256s the cache module already
verifies). The study worker builds a run's dataset once more after its
metrics and writes `recorded()` into DONE.json, so a result says which
images it came from.
"""
import os

from sbd_plugin.datasets import cache

_recorded = {}
_file_hashes = {}


def clear():
  """Forgets what was recorded (before building the dataset to describe)."""
  _recorded.clear()


def recorded():
  """The sources recorded since `clear`, as a list of dicts, sorted by what."""
  return [dict(_recorded[k]) for k in sorted(_recorded)]


def _sha256(path):
  """SHA-256 of a file, remembered per (path, size, mtime) in this process."""
  stat = os.stat(path)
  key = (path, stat.st_size, stat.st_mtime_ns)
  if key not in _file_hashes:
    _file_hashes[key] = cache.file_sha256(path)
  return _file_hashes[key]


def record_file(what, path):
  """Records that `what` (e.g. "dSprites masks") was read from a real file."""
  real = os.path.realpath(path)
  _recorded[what] = {"what": what, "kind": "file", "path": real,
                     "sha256": _sha256(real)}


def record_generated(what, generator, cache_name, version):
  """Records that `what` was generated, and the cache that holds it.

  Args:
    what: What the dataset uses, e.g. "dSprites masks".
    generator: The module that generates it.
    cache_name: The asset's name in the cache (`cache.load_or_build`).
    version: The cache version (changes whenever the output would).
  """
  _recorded[what] = {"what": what, "kind": "generated",
                     "generator": generator, "cache": cache_name,
                     "cache_version": version,
                     "cache_sha256": cache.checksum(cache_name)}
