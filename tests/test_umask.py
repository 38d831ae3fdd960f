"""Files the plugin writes respect the user's umask (results on shared disks).

Atomic writes go through mkstemp/mkdtemp, which make private files (0600) and
folders (0700); every such file and folder must end with the mode a plain
`open(path, "w")` / `os.makedirs` gives under the same umask.
"""
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from sbd_plugin import atomic
from sbd_plugin.datasets import cache


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
  old = os.umask(request.param)
  try:
    yield request.param
  finally:
    os.umask(old)


def _mode(path):
  return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_get_the_mode_a_plain_open_gives(tmp_path, umask):
  plain = tmp_path / "plain.txt"
  with open(plain, "w") as f:
    f.write("x")
  expected = {0o022: 0o644, 0o002: 0o664, 0o077: 0o600}[umask]
  assert _mode(plain) == expected
  atomic.write_text(str(tmp_path / "results.csv"), "a,b\n1,2\n")
  atomic.write_json(str(tmp_path / "DONE.json"), {"run_id": "r"})
  assert _mode(tmp_path / "results.csv") == expected
  assert _mode(tmp_path / "DONE.json") == expected
  # Replacing an existing file gives the same mode, not the old file's.
  os.chmod(tmp_path / "results.csv", 0o600)
  atomic.write_text(str(tmp_path / "results.csv"), "a,b\n")
  assert _mode(tmp_path / "results.csv") == expected


def test_umask_is_read_without_changing_it(umask):
  assert atomic.current_umask() == umask
  assert os.umask(umask) == umask  # still the one the fixture set


def test_dataset_cache_folder_and_files_follow_the_umask(tmp_path, monkeypatch,
                                                         umask):
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path / "cache"))
  cache.load_or_build("umask_test", "v1",
                      lambda: {"a": np.arange(4, dtype=np.int32)})
  folder = tmp_path / "cache" / "umask_test"
  assert _mode(folder) == 0o777 & ~umask
  for name in ("a.npy", "manifest.json"):
    assert _mode(folder / name) == 0o666 & ~umask


@pytest.mark.parametrize("mask", ["022", "002"])
def test_a_process_started_with_a_umask_writes_shared_files(tmp_path, mask):
  # As a user's shell would start a tool: the umask is inherited, not set by
  # the code under test.
  code = ("import sys; from sbd_plugin import atomic; "
          "atomic.write_json(sys.argv[1], {'ok': 1})")
  path = tmp_path / "versions.json"
  subprocess.run(["sh", "-c", 'umask %s && exec "$0" -c "$1" "$2"' % mask,
                  sys.executable, code, str(path)], check=True)
  assert _mode(path) == 0o666 & ~int(mask, 8)
