"""Swapping the function inside one of dlib's gin configurables.

dlib's callers look its configurables up at call time and gin records their
parameters in the operative config that later steps read back, so the gin
wrapper must stay. gin 0.5's `_make_gin_wrapper` keeps the decorated function
in a closure cell named `fn`; replacing that cell's content changes what the
configurable runs and nothing else.
"""


def wrap_inner(wrapper, make_replacement, marker):
  """Replaces the function inside a gin wrapper, once.

  Args:
    wrapper: A function decorated with @gin.configurable (e.g. dlib's
      `train.train`).
    make_replacement: Callable taking the current inner function and
      returning its replacement (same signature).
    marker: Attribute name set on the replacement, so a second call is a
      no-op.

  Raises:
    RuntimeError: if gin's wrapper does not have the expected layout.
  """
  cells = dict(zip(wrapper.__code__.co_freevars, wrapper.__closure__ or ()))
  cell = cells.get("fn")
  if cell is None:
    raise RuntimeError("gin's wrapper of %s has an unexpected layout; "
                       "sbd_plugin supports gin-config 0.5.0." %
                       wrapper.__qualname__)
  if getattr(cell.cell_contents, marker, False):
    return
  replacement = make_replacement(cell.cell_contents)
  setattr(replacement, marker, True)
  cell.cell_contents = replacement
