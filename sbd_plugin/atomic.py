"""Atomic writes and trusting reads of the files that mark progress.

A marker (DONE.json, a dlib result JSON, an aggregated table, a cache
manifest) is written to a temporary file in the same folder, flushed to disk
and renamed over its final name, so a reader sees the old file or the whole
new one, never half of it. A reader counts a marker only if it parses.
Files and folders end with the mode a plain `open(path, "w")` or
`os.makedirs` would give under the user's umask (mkstemp and mkdtemp make
them private), so collaborators on a shared file system can read results.
"""
import contextlib
import json
import os
import shutil
import tempfile


def current_umask():
  """Returns the process's umask.

  Read from /proc where Linux has it: setting the umask and setting it back,
  the only portable way, briefly changes it for every thread of the process.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def default_file_mode():
  """The mode `open(path, "w")` gives a new file: 0666 minus the umask."""
  return 0o666 & ~current_umask()


def default_dir_mode():
  """The mode `os.makedirs` gives a new folder: 0777 minus the umask."""
  return 0o777 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path beside `path`; renames it over `path` on success.

  Args:
    path: Final file path. Its folder must exist.

  Yields:
    A path in the same folder to write the whole file to. If the block
    raises, the temporary file is removed and `path` is left untouched.
  """
  with _temporary(path) as tmp:
    yield tmp
    _flush(tmp)
    os.replace(tmp, path)


@contextlib.contextmanager
def _temporary(path):
  """A temporary file beside `path` with the umask's mode, removed after."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp", dir=directory)
  os.close(fd)
  try:
    os.chmod(tmp, default_file_mode())
    yield tmp
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def _flush(path):
  with open(path, "rb") as f:
    os.fsync(f.fileno())


def copy_if_absent(source, path):
  """Copies file `source` to `path` whole, unless `path` exists.

  Of two processes racing to create `path`, the first one's copy stays: the
  hard link fails for the second. Where hard links are not supported it
  falls back to a rename, which a racing process may overwrite.

  Returns:
    True if this call created `path`.
  """
  with _temporary(path) as tmp:
    shutil.copyfile(source, tmp)
    _flush(tmp)
    try:
      os.link(tmp, path)
    except FileExistsError:
      return False
    except OSError:  # No hard links on this file system.
      if os.path.exists(path):
        return False
      os.replace(tmp, path)
    return True


def write_text(path, text):
  """Writes `text` to `path` atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


def write_json(path, obj, **kwargs):
  """Writes `obj` as JSON to `path` atomically (kwargs go to json.dump)."""
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      json.dump(obj, f, **kwargs)


def read_json(path):
  """Returns the parsed JSON file, or None if it is missing or does not parse.

  A marker that does not parse was cut short (a killed writer, a full disk):
  callers treat it as absent and redo the step that writes it.

  Raises:
    OSError: if the file exists but cannot be read (no permission, an I/O or
      stale NFS error). Such a marker is not absent: treating it so would
      redo, and overwrite, finished work.
  """
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, NotADirectoryError, ValueError):
    return None
