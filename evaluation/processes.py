"""Child processes that die with their runner, and locks a dead process frees.

- `FolderLock`: an exclusive `flock` on a file in a folder. The kernel frees
  it when the holder dies (even by SIGKILL), so a killed runner never blocks
  the next one, while a live one keeps a second runner (or a second worker of
  the same run) out.
- `die_with_parent`: called first thing in a child; asks Linux to SIGKILL the
  child when its parent dies, so a killed runner leaves no worker behind to
  write into a run that a later runner redoes.
- `Children`: the runner's live worker processes, each in its own process
  group; `terminate_all` stops them on SIGTERM or Ctrl-C.
"""
import ctypes
import errno
import fcntl
import os
import signal
import subprocess
import threading
import time

PARENT_ENV = "SBD_PARENT_PID"
_PR_SET_PDEATHSIG = 1


class LockedError(RuntimeError):
  """The lock is held by another live process."""


class FolderLock(object):
  """An exclusive lock on `<folder>/<name>`, held until `release` or death."""

  def __init__(self, folder, name=".lock"):
    self.path = os.path.join(folder, name)
    self._fd = None

  def acquire(self, what):
    """Takes the lock or raises LockedError naming the holder.

    Args:
      what: What holds the lock, recorded in the file for the error message.
    """
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
      os.close(fd)
      if e.errno in (errno.EAGAIN, errno.EACCES):
        raise LockedError(holder or "another process") from None
      raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, ("%s (pid %d on %s)" % (what, os.getpid(),
                                         os.uname().nodename)).encode(), 0)
    self._fd = fd
    return self

  def release(self):
    if self._fd is not None:
      os.close(self._fd)  # Closing the descriptor drops the flock.
      self._fd = None


def die_with_parent():
  """Makes Linux SIGKILL this process when the process that started it dies.

  The parent's pid is passed in $SBD_PARENT_PID by `Children.start`; if the
  parent is already gone (re-parented before we got here), exit at once.
  """
  expected = os.environ.get(PARENT_ENV)
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
  except (OSError, AttributeError):  # Not Linux: rely on the runner's handlers.
    return
  if expected and os.getppid() != int(expected):
    os._exit(1)  # pylint: disable=protected-access


class Children(object):
  """Worker processes started by this process, stoppable all at once."""

  def __init__(self):
    self._procs = set()
    self._lock = threading.Lock()
    self.stopping = False

  def run(self, command, log, env, cwd=None):
    """Runs `command` to completion in its own process group.

    Args:
      command: List of arguments.
      log: Open file receiving stdout and stderr.
      env: Environment of the child.
      cwd: Working directory.

    Returns:
      The exit code (negative: killed by that signal).
    """
    env = dict(env, **{PARENT_ENV: str(os.getpid())})
    with self._lock:
      if self.stopping:
        return -signal.SIGTERM
      proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                              start_new_session=True)
      self._procs.add(proc)
    try:
      return proc.wait()
    finally:
      with self._lock:
        self._procs.discard(proc)

  def terminate_all(self, grace_seconds=5.0):
    """SIGTERMs every child's process group, then SIGKILLs what is left."""
    with self._lock:
      self.stopping = True
      procs = list(self._procs)
    for sig in (signal.SIGTERM, signal.SIGKILL):
      for proc in procs:
        try:
          os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
          pass
      deadline = time.time() + grace_seconds
      while time.time() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
      if all(p.poll() is not None for p in procs):
        return
