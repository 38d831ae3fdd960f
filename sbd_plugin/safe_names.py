"""Names that become folder names: never a path.

A metric, run or dataset name from a study file, a run.json or the command
line ends up as one folder under a study or output folder, and the worker
removes such a folder to redo a step. A name with a separator or "..", or an
absolute path, would make that folder one outside.
"""
import os


def folder_name(name, what):
  """Returns `name` if it is exactly one folder name, else raises.

  Args:
    name: The name to check.
    what: What the name is, for the error, e.g. "metric name".

  Returns:
    `name`, unchanged.

  Raises:
    ValueError: if `name` is empty, ".", "..", or holds a path separator or
      a NUL byte.
  """
  separators = {os.sep} | ({os.altsep} if os.altsep else set())
  if (not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or
      any(s in name for s in separators)):
    raise ValueError("The %s %r is not a single folder name (no '/', no "
                     "'..'): it would name a folder outside its own." % (
                         what, name))
  return name
