"""What a result came from: the plugin's source revision and the data's source.

Recorded with every run (DONE.json) and the aggregated results
(results/versions.json), beside the library versions (`versions`) and the
machine (`machine`). The source revision is read with git from the package's
own folder, so it names the code that ran, whatever the working directory;
an installed copy that is not a git checkout records its installed version.
Nothing here fails when git is missing: the record says so instead.
"""
import importlib.metadata
import os
import subprocess

# Keys of DONE.json and of versions.json's per-run tables.
SOURCE_KEY = "source"
DATA_KEY = "data"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_GIT_TIMEOUT_SECONDS = 20
_MAX_CHANGED = 20  # modified files listed in the record
NOT_RECORDED = "not recorded"  # a run made before these were recorded


def _git(args, cwd):
  """Output of a git command, or None if git is missing or it fails."""
  try:
    proc = subprocess.run(["git"] + list(args), cwd=cwd, capture_output=True,
                          text=True, timeout=_GIT_TIMEOUT_SECONDS, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  # Only the end is stripped: a porcelain status line starts with a space.
  return proc.stdout.rstrip() if proc.returncode == 0 else None


def _installed_version():
  try:
    return importlib.metadata.version("sbd_plugin")
  except importlib.metadata.PackageNotFoundError:
    return None


def source_revision(package_dir=_PACKAGE_DIR):
  """The plugin's code identity.

  Args:
    package_dir: The package's folder (tests point it elsewhere).

  Returns:
    Dict: `version` (installed version or None); `commit` (the checkout's
    HEAD, None if not a checkout or git is missing); `modified` (True if a
    tracked file differs from the commit; untracked files, such as study
    outputs inside the checkout, do not count; None when `commit` is None);
    `changed` (up to `_MAX_CHANGED` of those files); `checkout` (its top
    folder or None); `note` (why there is no commit, "" otherwise).
  """
  record = {"version": _installed_version(), "commit": None,
            "modified": None, "changed": [], "checkout": None, "note": ""}
  top = _git(["rev-parse", "--show-toplevel"], package_dir)
  if top is None:
    record["note"] = ("not a git checkout, or git is not installed: only "
                      "the installed version is known")
    return record
  # A copy installed into a virtualenv inside some checkout is not that
  # checkout's code: the package's own files must be tracked there.
  tracked = _git(["ls-files", "--", "__init__.py"], package_dir)
  if not tracked:
    record["note"] = ("the package's files are not tracked by the git "
                      "checkout around them (%s): only the installed version "
                      "is known" % top)
    return record
  record["commit"] = _git(["rev-parse", "HEAD"], package_dir)
  status = _git(["status", "--porcelain", "--untracked-files=no"], top)
  if status is not None:
    changed = [line[3:] for line in status.splitlines()]
    record["modified"] = bool(changed)
    record["changed"] = changed[:_MAX_CHANGED]
  record["checkout"] = top
  return record


def describe_revision(record):
  """One line for a report: "commit 1a2b3c4 (modified)", "not recorded"."""
  if not record:
    return NOT_RECORDED
  if record.get("commit"):
    state = {True: "modified", False: "clean"}.get(record.get("modified"),
                                                   "state unknown")
    return "commit %s (%s)" % (record["commit"][:12], state)
  return "sbd_plugin %s (no git checkout)" % record.get("version")

