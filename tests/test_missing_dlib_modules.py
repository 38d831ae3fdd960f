"""dlib 1.5's wheel installs commands whose modules it does not ship.

`dlib_udr`, `dlib_train_weakly_supervised` and friends import packages that
are only in dlib's GitHub repository; with the plugin they end with a message
saying so (exit 1, no traceback) instead of a bare ModuleNotFoundError.
"""
import glob
import importlib.util
import os
import re
import sys

import pytest

from sbd_plugin.dlib_bridge import missing_modules
from tests.helpers import BIN
from tests.helpers import run_tool


@pytest.mark.parametrize("command,package", [
    ("dlib_udr", "disentanglement_lib.evaluation.udr"),
    ("dlib_train_weakly_supervised", "disentanglement_lib.methods.weak"),
])
def test_commands_without_their_module_say_what_is_missing(command, package):
  proc = run_tool([command, "--help"], check=False, timeout=300)
  assert proc.returncode == 1
  assert "%s: error: %s needs %s, which disentanglement-lib 1.5 from PyPI " \
         "does not ship" % (command, command, package) in proc.stderr
  assert missing_modules.SOURCE in proc.stderr
  assert "Traceback" not in proc.stderr


def test_importing_a_missing_module_is_an_import_error_that_says_why():
  with pytest.raises(ImportError, match="disentanglement-lib 1.5 from PyPI "
                     "does not ship") as raised:
    importlib.import_module("disentanglement_lib.methods.weak.train_weak_lib")
  assert isinstance(raised.value, ModuleNotFoundError)
  # Other missing names keep Python's own error.
  with pytest.raises(ModuleNotFoundError, match="No module named"):
    importlib.import_module("disentanglement_lib.no_such_module")


def _dlib_imports(script):
  with open(script, errors="replace") as f:
    text = f.read()
  for module, name in re.findall(
      r"^from (disentanglement_lib[\w.]*) import (\w+)", text, re.MULTILINE):
    yield module + "." + name if name.islower() else module
  for module in re.findall(r"^import (disentanglement_lib[\w.]*)", text,
                           re.MULTILINE):
    yield module


def _exists(module):
  try:
    if importlib.util.find_spec(module) is not None:
      return True
  except ImportError:
    return False
  # `from package import function`: the package is what must exist.
  parent = module.rpartition(".")[0]
  try:
    return importlib.util.find_spec(parent) is not None
  except ImportError:
    return False


def test_the_table_names_every_installed_command_that_lacks_a_module():
  lacking = {}
  for script in sorted(glob.glob(os.path.join(BIN, "dlib_*"))):
    for module in _dlib_imports(script):
      if not _exists(module):
        lacking.setdefault(os.path.basename(script), set()).add(
            missing_modules._package(module))  # pylint: disable=protected-access
  assert lacking, "dlib's wheel now ships every module: drop the table"
  table = {}
  for package, commands in missing_modules.MISSING.items():
    for command in commands:
      table.setdefault(command, set()).add(package)
  assert lacking == table
