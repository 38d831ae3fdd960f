"""scripts/bootstrap.sh refuses to start a set-up that the disk cannot hold.

A half-installed environment from a full disk fails later with pip's
"No space left on device" in the middle of a download; the check before
creating anything names the folder, the space and what to do.
"""
import os
import stat
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fake_df(folder, free_kb):
  """A `df` on PATH that reports free_kb KB available on every disk."""
  path = folder / "df"
  path.write_text(
      "#!/bin/sh\n"
      "echo 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
      "echo '/dev/x 100000000 99000000 %d 99%% /'\n" % free_kb)
  path.chmod(path.stat().st_mode | stat.S_IXUSR)
  return str(folder)


def _bootstrap(tmp_path, free_kb):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  env = dict(os.environ, PATH=_fake_df(bin_dir, free_kb) + os.pathsep + os.environ["PATH"],
             PYTHON=sys.executable, SBD_VENV=str(tmp_path / "venv"))
  env.pop("SBD_GPU", None)
  return subprocess.run(["bash", os.path.join(ROOT, "scripts", "bootstrap.sh")],
                        env=env, capture_output=True, text=True, timeout=60)


def test_a_disk_without_room_for_the_environment_is_refused_before_anything_is_made(tmp_path):
  done = _bootstrap(tmp_path, free_kb=500 * 1024)
  assert done.returncode == 1
  assert "has 500 MB free" in done.stderr
  assert "needs about 4 GB" in done.stderr
  assert "SBD_VENV" in done.stderr
  assert not (tmp_path / "venv").exists()
