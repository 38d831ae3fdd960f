"""What setup.py declares agrees with what the code needs and the pins install."""
import ast
import os
import sys

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tests.helpers import REPO


def _setup_keywords():
  """The literal keyword arguments of setup.py's setuptools.setup call."""
  with open(os.path.join(REPO, "setup.py")) as f:
    tree = ast.parse(f.read())
  for node in ast.walk(tree):
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "setup":
      return {k.arg: k.value for k in node.keywords}
  raise AssertionError("no setuptools.setup call in setup.py")


def _pins(path):
  with open(os.path.join(REPO, path)) as f:
    reqs = [Requirement(l) for l in f.read().splitlines()
            if l.strip() and not l.startswith("#")]
  return {r.name.lower(): r for r in reqs}


def test_python_requires_is_the_python_the_code_needs():
  spec = SpecifierSet(ast.literal_eval(_setup_keywords()["python_requires"]))
  assert "3.11" in spec  # tomllib
  # 3.12 and 3.13: the TF 2.21 stack; nothing newer has a TensorFlow wheel.
  assert "3.12" in spec and "3.13" in spec
  assert "3.10" not in spec and "3.14" not in spec
  assert "%d.%d" % sys.version_info[:2] in spec


def test_the_executor_extras_and_requirements_ray_txt_agree():
  extras = _setup_keywords()["extras_require"]
  declared = {}
  for key, value in zip(extras.keys, extras.values):
    name = ast.literal_eval(key)
    if name in ("ray", "slurm"):
      declared.update({Requirement(r).name.lower(): Requirement(r)
                       for r in ast.literal_eval(value)})
  pins = _pins(os.path.join("requirements", "ray.txt"))
  assert set(declared) == {"ray", "submitit"}
  for name, requirement in declared.items():
    pinned = pins[name]
    version = str(pinned.specifier).lstrip("=")
    assert version in requirement.specifier, (name, version)
    # The same package: no extra that the pins do not install.
    assert requirement.extras == pinned.extras, name
