"""A progress marker that exists but cannot be read stops the runner.

`atomic.read_json` takes a missing or cut-short marker for absent work (the
step is redone); one that cannot be read (permissions, an I/O or stale NFS
error) is not absent, and redoing it would overwrite finished work. The tests
run as root, where permissions do not stop a read, so a directory in the
marker's place stands for an unreadable file.
"""
import os

import pytest

from sbd_plugin import atomic
from evaluation import layout
from tests import helpers


def _contents(folder):
  """{path: bytes} of every file but the locks (their holder record)."""
  return {p: p.read_bytes() for p in folder.rglob("*")
          if p.is_file() and p.name != ".lock"}


def test_missing_and_cut_short_markers_read_as_absent(tmp_path):
  assert atomic.read_json(str(tmp_path / "missing.json")) is None
  assert atomic.read_json(str(tmp_path / "no_dir" / "x.json")) is None
  (tmp_path / "cut.json").write_text('{"run_id": "a", "tim')
  assert atomic.read_json(str(tmp_path / "cut.json")) is None
  (tmp_path / "file").write_text("{}")
  assert atomic.read_json(str(tmp_path / "file" / "x.json")) is None


def test_an_unreadable_marker_is_an_error_not_absent_work(tmp_path):
  (tmp_path / "DONE.json").mkdir()
  with pytest.raises(IsADirectoryError):
    atomic.read_json(str(tmp_path / "DONE.json"))


def test_rerun_with_an_unreadable_done_marker_redoes_nothing(tiny_study,
                                                              tmp_path):
  out = helpers.copy_study(tiny_study, tmp_path / "out")
  run_dir = out / "runs" / helpers.TINY_STUDY_RUNS[0]
  done = run_dir / layout.DONE_FILE
  done.rename(run_dir / "DONE.saved")
  done.mkdir()
  before = _contents(out)
  proc = helpers.sbd_study(["run", str(tiny_study.spec), "--output", str(out),
                            "--jobs", "1"])
  assert proc.returncode == 2, proc.stdout + proc.stderr
  assert "sbd_study: error: %s: Is a directory." % done in proc.stderr
  assert "finished runs and checkpoints are kept" in proc.stderr
  assert _contents(out) == before  # No worker started, nothing rewritten.
  assert not os.path.exists(run_dir / layout.ERROR_FILE)
