"""Child processes that die with their runner, and locks a dead process frees.

- `FolderLock`: an exclusive `flock` on a file in a folder. The kernel frees
  it when the holder dies (even by SIGKILL), so a killed runner never blocks
  the next one, while a live one keeps a second runner (or a second worker of
  the same run) out. The holder writes its name into the file, for the
  error the next one gets, and clears it on release. Where `flock` is not
  supported (ENOSYS, EOPNOTSUPP or ENOLCK on some Lustre and NFS mounts) it
  falls back to a lock file created with O_CREAT|O_EXCL that names its
  holder's host, pid and start time; such a file is stale once that process
  is gone from this host. One left by a process of another host cannot be
  checked from here: it stays in force and the error says which file to
  delete once that process is known to be gone.
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
import json
import os
import re
import signal
import subprocess
import threading
import time

PARENT_ENV = "SBD_PARENT_PID"
_PR_SET_PDEATHSIG = 1


class LockedError(RuntimeError):
  """The lock is held by another live process."""


# A lock file that does not parse (its writer died between creating and
# writing it) is stale after this long; younger, its writer may be at work.
_UNWRITTEN_SECONDS = 10.0
# flock errors that mean "not supported here", not "held by someone".
_NO_FLOCK = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOLCK)


def _start_time(pid):
  """The start time of process `pid` (clock ticks since boot), or None."""
  try:
    with open("/proc/%d/stat" % pid) as f:
      return int(f.read().rsplit(")", 1)[1].split()[19])
  except (OSError, IndexError, ValueError):
    return None


def _own_record(what):
  """The lock files' record of this process (`what` holds the lock)."""
  return {"what": what, "host": os.uname().nodename, "pid": os.getpid(),
          "start_time": _start_time(os.getpid())}


# How earlier versions named the holder in the flock'ed file (plain text).
_OLD_HOLDER_TEXT = re.compile(r"^(.*) \(pid (\d+) on (.+)\)$", re.S)


def _holder_text(record):
  return "%s (pid %s on %s)" % (record.get("what", "?"), record.get("pid"),
                                record.get("host"))


class FolderLock(object):
  """An exclusive lock on `<folder>/<name>`, held until `release` or death."""

  def __init__(self, folder, name=".lock"):
    self.path = os.path.join(folder, name)
    # The fallback where flock is unsupported (see the module docstring).
    self.file_path = self.path + ".owner"
    # Who may remove a stale `file_path` now (see `_remove_stale`).
    self.claim_path = self.file_path + ".takeover"
    self._fd = None
    self._writable = False
    self._record = None

  def acquire(self, what):
    """Takes the lock or raises LockedError naming the holder.

    Args:
      what: What holds the lock, recorded in the file for the error message.
    """
    fd, writable = self._open()
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      holder = self._named_holder(os.pread(fd, 4096, 0))
      os.close(fd)
      if e.errno in (errno.EAGAIN, errno.EACCES):
        raise LockedError(holder or "another process") from None
      if e.errno in _NO_FLOCK:
        return self._acquire_file(what)
      raise
    if writable:
      os.ftruncate(fd, 0)
      os.pwrite(fd, json.dumps(_own_record(what)).encode(), 0)
    self._fd, self._writable = fd, writable
    return self

  def _named_holder(self, content):
    """The holder the lock file's `content` names, as an error says it.

    A holder that could not write the file (see `_open`) leaves in it the
    name of whoever wrote it last; a holder that could clears it on release.
    So a name is trusted only while that process may still run: a process
    of this host that has ended is not named (one of another host cannot be
    checked from here).

    Returns:
      Text naming the holder, or "" if the file names no live process.
    """
    text = content.decode("utf-8", "replace").strip()
    try:
      record = json.loads(text)
    except ValueError:
      # An older version's "<what> (pid <pid> on <host>)", or nothing.
      match = _OLD_HOLDER_TEXT.match(text)
      record = match and {"what": match.group(1), "pid": int(match.group(2)),
                          "host": match.group(3)}
      if not record:
        return text
    if not isinstance(record, dict) or self._is_stale(record):
      return ""
    return _holder_text(record)

  def _open(self):
    """Opens the lock file, made with the umask's mode (0666 minus it).

    Returns:
      (descriptor, writable). A lock file another user made without group
      write (older versions used 0644) is opened read-only: flock works on it,
      only the holder's name is not written.
    """
    try:
      return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666), True
    except PermissionError:
      if not os.path.exists(self.path):
        raise
      return os.open(self.path, os.O_RDONLY), False

  def _acquire_file(self, what):
    """The fallback: creates `file_path` exclusively, or names its holder."""
    record = _own_record(what)
    for _ in range(2):  # Once more after removing a stale file.
      try:
        fd = os.open(self.file_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o666)
      except FileExistsError:
        holder = self._read_file()
        if holder is None and self._age() < _UNWRITTEN_SECONDS:
          raise LockedError("another process, taking the lock just now "
                            "(%s)" % self.file_path) from None
        if holder is not None and not self._is_stale(holder):
          raise LockedError(self._held_text(holder)) from None
        self._remove_stale()
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(record, f)
      self._record = record
      return self
    if self._age(self.claim_path) >= _UNWRITTEN_SECONDS:
      raise LockedError(
          "a process removing the stale lock file %s was stopped half way: "
          "if no process of this study runs, delete %s" % (
              self.file_path, self.claim_path))
    raise LockedError("another process took %s first" % self.file_path)

  def _age(self, path=None):
    try:
      return time.time() - os.stat(path or self.file_path).st_mtime
    except FileNotFoundError:
      return float("inf")

  def _read_file(self):
    """The holder's record, or None if the file is gone or half-written.

    Raises:
      LockedError: if the file exists but cannot be read (another user's,
        mode 0600): its holder cannot be checked, so it stays in force.
    """
    try:
      with open(self.file_path) as f:
        record = json.load(f)
    except (FileNotFoundError, ValueError):
      return None
    except OSError as e:
      raise LockedError(
          "the lock file %s cannot be read (%s): if no process of this study "
          "runs, delete it" % (self.file_path, e.strerror or e)) from None
    return record if isinstance(record, dict) else None

  @staticmethod
  def _is_stale(record):
    """True if the holder was a process of this host that is gone."""
    if record.get("host") != os.uname().nodename:
      return False  # Another host's process: cannot be checked from here.
    pid = record.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
      return True
    # The pid may have been reused by a process that started later.
    started = record.get("start_time")
    return started is not None and _start_time(pid) not in (None, started)

  def _held_text(self, record):
    text = _holder_text(record)
    if record.get("host") != os.uname().nodename:
      text += ("; this file system has no flock, so a lock of another host "
               "cannot be checked: if that process is gone, delete %s" %
               self.file_path)
    return text

  def _remove_stale(self):
    """Removes the lock file if it is stale, in turn with other removers.

    The remover that creates `claim_path` (exclusively) reads the lock file
    again and removes it only if it is still stale; the others leave it. A
    stale file cannot change meanwhile (its holder is gone, O_EXCL fails
    while it exists, no other remover has the claim), so a live holder's
    file, made after the stale one was read, is never removed or moved
    aside, not even for a moment.
    """
    try:
      os.close(os.open(self.claim_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                       0o666))
    except FileExistsError:
      return  # Another process is at it: look at the lock file again.
    try:
      holder = self._read_file()
      if (self._age() >= _UNWRITTEN_SECONDS if holder is None else
          self._is_stale(holder)):
        os.remove(self.file_path)
    except FileNotFoundError:
      pass
    finally:
      os.remove(self.claim_path)

  def release(self):
    # The descriptor is taken first, so a signal handler that releases too
    # does not close it twice. The record is cleared last: a handler that
    # interrupts this release and exits still removes the lock file.
    fd, self._fd = self._fd, None
    record = self._record
    if fd is not None:
      if self._writable:
        # The next holder may not be able to write its name (see `_open`):
        # it must not be taken for this process.
        try:
          os.ftruncate(fd, 0)
        except OSError:
          pass
      os.close(fd)  # Closing the descriptor drops the flock.
    if record is not None:
      try:
        if self._read_file() == record:
          os.remove(self.file_path)
      except FileNotFoundError:
        pass  # Removed by a handler that interrupted this release.
      except LockedError:
        pass  # Unreadable now: left for the next holder's error to name.
      self._record = None


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


def keep_niceness(pid):
  """Gives child `pid`, in a session of its own, this process's niceness.

  With the kernel's autogroups (on by default on most desktop Linux) the
  nice value only ranks processes within one session, and a new session
  gets a group of full weight: a worker of `nice -n 19 sbd_study run` took
  as much CPU as the user's other work. Its session's group gets this
  process's nice value instead. Best effort: without autogroups (no such
  /proc file) nothing changes, and neither does the worker's own nice
  value, which it inherits.

  Args:
    pid: Process id of a child that started a session of its own.
  """
  niceness = os.nice(0)
  if niceness <= 0:
    return
  try:
    with open("/proc/%d/autogroup" % pid, "w") as f:
      f.write(str(niceness))
  except OSError:
    pass


class Children(object):
  """Worker processes started by this process, stoppable all at once.

  Start children from a thread that outlives them (the main thread): Linux
  delivers `die_with_parent`'s signal when the starting thread ends.
  """

  def __init__(self):
    self._procs = set()
    # Reentrant: the runner's SIGTERM / SIGINT handler calls `terminate_all`
    # in the main thread, possibly while that thread is inside `start`.
    self._lock = threading.RLock()
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
    keep_niceness(proc.pid)
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
