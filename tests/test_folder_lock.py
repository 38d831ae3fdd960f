"""The folder lock where `flock` is unsupported (Lustre, some NFS mounts).

`fcntl.flock` is made to raise ENOSYS, as it does there: the lock falls back
to an exclusive lock file naming its holder, which keeps a second holder out
while the first lives and is taken over once that process is gone, without
ever freeing the file of a live holder, not even for a moment.
"""
import errno
import fcntl
import json
import os
import subprocess
import sys

import pytest

from evaluation import processes
from tests import helpers


def test_without_flock_a_lock_file_keeps_a_second_holder_out(tmp_path,
                                                             no_flock):
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  record = json.loads((tmp_path / ".lock.owner").read_text())
  assert record["pid"] == os.getpid()
  assert record["host"] == os.uname().nodename
  with pytest.raises(processes.LockedError,
                     match=r"sbd_study run \(pid %d on " % os.getpid()):
    processes.FolderLock(str(tmp_path)).acquire("worker")
  lock.release()
  assert not (tmp_path / ".lock.owner").exists()
  processes.FolderLock(str(tmp_path)).acquire("worker").release()


def test_a_signal_during_release_still_removes_the_lock_file(tmp_path,
                                                             no_flock,
                                                             monkeypatch):
  # The runner's SIGTERM handler releases the lock and exits at once
  # (os._exit): when it interrupts the main thread's own release, the lock
  # file must still go, or a dead runner's file is left behind.
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  read = lock._read_file  # pylint: disable=protected-access

  def interrupted():
    monkeypatch.setattr(lock, "_read_file", read)
    lock.release()  # the handler's release
    raise KeyboardInterrupt  # the handler's exit: this release never ends

  monkeypatch.setattr(lock, "_read_file", interrupted)
  with pytest.raises(KeyboardInterrupt):
    lock.release()
  assert not (tmp_path / ".lock.owner").exists()
  lock.release()  # nothing left to do
  processes.FolderLock(str(tmp_path)).acquire("worker").release()


def test_without_flock_the_runner_names_the_holder(tmp_path, no_flock):
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  helpers.assert_second_runner_refused(tmp_path, lock)


def test_a_lock_file_of_a_dead_process_of_this_host_is_taken_over(tmp_path,
                                                                   no_flock):
  (tmp_path / ".lock.owner").write_text(json.dumps(
      {"what": "sbd_study run", "host": os.uname().nodename,
       "pid": helpers.dead_pid(), "start_time": 1}))
  lock = processes.FolderLock(str(tmp_path)).acquire("next runner")
  assert json.loads((tmp_path / ".lock.owner").read_text())["pid"] == (
      os.getpid())
  lock.release()
  assert os.listdir(tmp_path) == [".lock"]  # No stale copy left behind.


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path, no_flock):
  # Our own pid, but recorded with another start time: a reused pid.
  (tmp_path / ".lock.owner").write_text(json.dumps(
      {"what": "old runner", "host": os.uname().nodename,
       "pid": os.getpid(), "start_time": -1}))
  processes.FolderLock(str(tmp_path)).acquire("next runner").release()


def test_a_lock_file_that_cannot_be_read_stays_in_force(tmp_path, no_flock,
                                                       monkeypatch):
  # Another user's lock file with mode 0600: its holder cannot be checked,
  # so it is never taken for a stale or half-written one, however old.
  path = tmp_path / ".lock.owner"
  path.write_text("{}")
  os.utime(path, (1, 1))
  real_open = open

  def denied(file, *args, **kwargs):
    if str(file) == str(path):
      raise PermissionError(errno.EACCES, "Permission denied", str(file))
    return real_open(file, *args, **kwargs)

  monkeypatch.setattr("builtins.open", denied)
  with pytest.raises(processes.LockedError,
                     match="cannot be read .Permission denied.: if no process "
                     "of this study runs, delete it"):
    processes.FolderLock(str(tmp_path)).acquire("next runner")
  assert path.exists()


def test_a_lock_file_of_another_host_stays_and_says_what_to_delete(
    tmp_path, no_flock):
  (tmp_path / ".lock.owner").write_text(json.dumps(
      {"what": "sbd_study run", "host": "other-node-17", "pid": 1234,
       "start_time": 5}))
  with pytest.raises(processes.LockedError) as raised:
    processes.FolderLock(str(tmp_path)).acquire("next runner")
  message = str(raised.value)
  assert "pid 1234 on other-node-17" in message
  assert "delete %s" % (tmp_path / ".lock.owner") in message
  assert (tmp_path / ".lock.owner").exists()


def test_a_killed_holder_frees_the_fallback_lock(tmp_path):
  # A real process holding the fallback lock, killed by SIGKILL.
  code = ("import errno, fcntl, sys, time\n"
          "def refuse(fd, op): raise OSError(errno.EOPNOTSUPP, 'no')\n"
          "fcntl.flock = refuse\n"
          "from evaluation import processes\n"
          "processes.FolderLock(sys.argv[1]).acquire('holder')\n"
          "print('held', flush=True)\n"
          "time.sleep(60)\n")
  proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                          stdout=subprocess.PIPE, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
  try:
    assert proc.stdout.readline().strip() == "held"
    monkey = pytest.MonkeyPatch()
    monkey.setattr(fcntl, "flock", lambda fd, op: (_ for _ in ()).throw(
        OSError(errno.ENOSYS, "no")))
    try:
      with pytest.raises(processes.LockedError, match="holder"):
        processes.FolderLock(str(tmp_path)).acquire("second")
      proc.kill()
      proc.wait()
      processes.FolderLock(str(tmp_path)).acquire("second").release()
    finally:
      monkey.undo()
  finally:
    proc.kill()
    proc.wait()


def test_taking_over_a_stale_lock_file_never_frees_a_live_one(tmp_path,
                                                               no_flock,
                                                               monkeypatch):
  """Runner B finds a stale lock file; before B removes it, A takes it over.
  After each step B then takes on the file system, a third runner C must
  still find A's file and be refused: two holders at once is what the lock
  is for."""
  owner = tmp_path / ".lock.owner"
  owner.write_text(json.dumps({"what": "killed runner",
                               "host": os.uname().nodename,
                               "pid": helpers.dead_pid(), "start_time": 1}))
  others = {"a": None, "busy": False, "c": []}
  real_is_stale = processes.FolderLock._is_stale  # pylint: disable=protected-access

  def as_other(take):
    others["busy"] = True
    try:
      return take()
    finally:
      others["busy"] = False

  def a_takes_over_meanwhile(record):
    stale = real_is_stale(record)
    if stale and others["a"] is None and not others["busy"]:
      others["a"] = as_other(
          lambda: processes.FolderLock(str(tmp_path)).acquire("runner A"))
    return stale

  def then_c_tries(real):
    def step(*args, **kwargs):
      result = real(*args, **kwargs)
      if others["a"] is not None and not others["busy"]:
        try:
          others["c"].append(as_other(
              lambda: processes.FolderLock(str(tmp_path)).acquire("runner C")))
        except processes.LockedError:
          others["c"].append(None)
      return result
    return step

  monkeypatch.setattr(processes.FolderLock, "_is_stale",
                      staticmethod(a_takes_over_meanwhile))
  for name in ("rename", "link", "remove", "unlink", "replace"):
    monkeypatch.setattr(os, name, then_c_tries(getattr(os, name)))
  with pytest.raises(processes.LockedError, match=r"runner A \(pid %d" %
                     os.getpid()):
    processes.FolderLock(str(tmp_path)).acquire("runner B")
  monkeypatch.undo()
  assert others["a"] is not None and others["c"]
  assert others["c"] == [None] * len(others["c"]), "C took the lock too"
  assert json.loads(owner.read_text())["what"] == "runner A"
  others["a"].release()
  assert os.listdir(tmp_path) == [".lock"]


def test_a_takeover_stopped_half_way_says_what_to_delete(tmp_path, no_flock):
  (tmp_path / ".lock.owner").write_text(json.dumps(
      {"what": "killed runner", "host": os.uname().nodename,
       "pid": helpers.dead_pid(), "start_time": 1}))
  claim = tmp_path / ".lock.owner.takeover"
  claim.write_text("")
  os.utime(claim, (0, 0))  # Its remover was killed long ago.
  with pytest.raises(processes.LockedError,
                     match="stopped half way: .* delete %s" % claim):
    processes.FolderLock(str(tmp_path)).acquire("next runner")
  claim.unlink()
  processes.FolderLock(str(tmp_path)).acquire("next runner").release()
