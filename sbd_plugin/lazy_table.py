"""A table of names -> "module:attribute", imported on use.

The shape of disent's registry: adding a dataset name
(`sbd_plugin.datasets.registry`) or an executor of the study runner
(`evaluation.executors`) is one line in its table. The table refuses a name
given twice or one it must not shadow, checks that each target reads
"module:attribute", and imports nothing until a name is loaded.
"""
import collections.abc
import importlib


class LazyTable(collections.abc.Mapping):
  """A read-only table of names -> "module:attribute", imported on use."""

  def __init__(self, kind, entries, taken=(), package=None):
    """Builds the table.

    Args:
      kind: What a name names ("Dataset", "Executor"), for error messages.
      entries: (name, "module:attribute") pairs.
      taken: Names the table must not shadow.
      package: The package a module starting with "." is relative to.

    Raises:
      ValueError: for a name given twice or taken, or a malformed target.
    """
    self._kind = kind
    self._package = package
    self._targets = {}
    taken = frozenset(taken)
    for name, target in entries:
      module_name, _, attribute = target.partition(":")
      if not module_name or not attribute:
        raise ValueError("%s %r: %r is not 'module:attribute'." %
                         (kind, name, target))
      if name in self._targets or name in taken:
        raise ValueError("%s name %r is registered twice." % (kind, name))
      self._targets[name] = target

  def __getitem__(self, name):
    return self._targets[name]

  def __iter__(self):
    return iter(self._targets)

  def __len__(self):
    return len(self._targets)

  def modules(self):
    """Returns the sorted names of the modules the table points to."""
    return sorted({t.partition(":")[0] for t in self._targets.values()})

  def import_module(self, module_name):
    """Imports one of `modules()` (relative ones from the table's package)."""
    return importlib.import_module(module_name, package=self._package)

  def load(self, name):
    """Imports and returns the attribute (a class or function) of `name`."""
    module_name, _, attribute = self._targets[name].partition(":")
    return getattr(self.import_module(module_name), attribute)
