"""Child processes that die with their runner, and locks a dead process frees.

- `FolderLock`: an exclusive `flock` on a file in a folder. The kernel frees
  it when the holder dies (even by SIGKILL), so a killed runner never blocks
  the next one, while a live one keeps a second runner (or a second worker of
  the same run) out.
- `die_with_parent`: called first thing in a child; asks Linux to SIGKILL the
  child when its parent dies, so a killed runner leaves no worker behind to
  write into a run that a later runner redoes.
- `exit_when_gone`: for a job whose runner is an ancestor but not its parent
  (submitit's local controller sits between them): exits when the runner is
  gone, and so takes its workers along.
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


def _alive(pid):
  """True while process `pid` runs; a zombie (ended, not reaped) has ended."""
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except FileNotFoundError:
    if os.path.isdir("/proc"):
      return False
  try:  # No /proc: a zombie counts as alive.
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Alive, owned by someone else.
    pass
  return True


def exit_when_gone(pid, poll_seconds=1.0):
  """Exits this process (status 1) soon after process `pid` has ended.

  Watches from a daemon thread. The children of this process that called
  `die_with_parent` die with it.

  Args:
    pid: Process to outlive by at most `poll_seconds`.
    poll_seconds: Interval between checks.
  """

  def watch():
    while _alive(pid):
      time.sleep(poll_seconds)
    os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name="exit_when_gone", daemon=True).start()


class Children(object):
  """Worker processes started by this process, stoppable all at once.

  Start children from a thread that outlives them (the main thread): Linux
  delivers `die_with_parent`'s signal when the starting thread ends.
  """

  def __init__(self):
    self._procs = set()
    self._lock = threading.Lock()
    self.stopping = False

  def start(self, command, log, env, cwd=None):
    """Starts `command` in its own process group.

    Args:
      command: List of arguments.
      log: Open file receiving stdout and stderr (may be closed afterwards).
      env: Environment of the child.
      cwd: Working directory.

    Returns:
      subprocess.Popen, or None once `terminate_all` was called.
    """
    env = dict(env, **{PARENT_ENV: str(os.getpid())})
    with self._lock:
      if self.stopping:
        return None
      proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                              start_new_session=True)
      self._procs.add(proc)
    return proc

  def poll(self, proc):
    """Exit code of a started child once it ended (then forgotten), or None."""
    code = proc.poll()
    if code is not None:
      with self._lock:
        self._procs.discard(proc)
    return code

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
