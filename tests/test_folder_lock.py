"""The folder lock where `flock` is unsupported (Lustre, some NFS mounts).

`fcntl.flock` is made to raise ENOSYS, as it does there: the lock falls back
to an exclusive lock file naming its holder, which keeps a second holder out
while the first lives and is taken over once that process is gone.
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


def test_without_flock_the_runner_names_the_holder(tmp_path, no_flock):
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  helpers.assert_second_runner_refused(tmp_path, lock)


def _dead_pid():
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_a_lock_file_of_a_dead_process_of_this_host_is_taken_over(tmp_path,
                                                                   no_flock):
  (tmp_path / ".lock.owner").write_text(json.dumps(
      {"what": "sbd_study run", "host": os.uname().nodename,
       "pid": _dead_pid(), "start_time": 1}))
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
