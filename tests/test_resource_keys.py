"""The [resources] keys, executor settings and `sbd_study run` flags agree.

`evaluation.study.RESOURCES` is the one list: each key is checked in a study
file's [resources] table, is a field of `executors.base.Settings`, and has a
flag of `sbd_study run` that overrides the file.
"""
import dataclasses

import pytest

from evaluation import cli
from evaluation import runner
from evaluation import study as study_lib
from evaluation.executors import base
from tests.helpers import study_toml

# A valid value of each type check: as the file writes it, as Settings holds
# it, a flag's text and the Settings value the flag then gives.
_VALUES = {
    "partition": ('"gpu"', "gpu", "cpu", "cpu"),
    "positive_int": ("3", 3, "4", 4),
    "non_negative_int": ("2", 2, "1", 1),
    "non_negative_number": ("0.5", 0.5, "0.25", 0.25),
    "slurm_name": ('"lab"', "lab", "other", "other"),
    "slurm_mem": ('"32G"', "32G", "64G", "64G"),
    "slurm_constraint": ('"a100"', "a100", "h100", "h100"),
    "shell_lines": ('["module load cuda"]', ["module load cuda"],
                    "module load gcc", ["module load gcc"]),
    # Extra sbatch options add to the file's, option by option.
    "sbatch_options": ('{reservation = "paper"}', {"reservation": "paper"},
                       "reservation=other", {"reservation": "other"}),
    # A switch: --portable / --no-portable, no value of its own.
    "bool": ("true", True, None, False),
}


def _plain(value):
  """Settings may hold a list as a tuple and a dict as (name, value) pairs."""
  if isinstance(value, dict):
    return sorted(value.items())
  if isinstance(value, (list, tuple)):
    return sorted(tuple(v) if isinstance(v, (list, tuple)) else v
                  for v in value)
  return value


def _study(tmp_path, resources=""):
  path = tmp_path / "s.toml"
  path.write_text(study_toml(extra="[resources]\n" + resources))
  return study_lib.parse_study(str(path))


def test_every_resource_key_is_a_settings_field():
  fields = {f.name for f in dataclasses.fields(base.Settings)}
  assert set(study_lib.RESOURCES) <= fields
  assert set(study_lib.SCHEMA["resources"]) == set(study_lib.RESOURCES)


@pytest.mark.parametrize("key", sorted(study_lib.RESOURCES))
def test_a_resource_set_in_the_file_is_overridden_by_its_flag(key, tmp_path):
  check, _, flag = study_lib.RESOURCES[key]
  written, value, text, overridden = _VALUES[check]
  study = _study(tmp_path, "%s = %s\n" % (key, written))
  from_file = runner.settings(study, str(tmp_path))
  assert _plain(getattr(from_file, key)) == _plain(value)
  given = [flag, text] if text is not None else ["--no-" + flag[2:]]
  args = cli._parser().parse_args(  # pylint: disable=protected-access
      ["run", "s.toml", "--output", "o"] + given)
  overrides = {k: getattr(args, k) for k in study_lib.RESOURCES}
  assert overrides[key] is not None
  both = runner.settings(study, str(tmp_path), overrides)
  assert _plain(getattr(both, key)) == _plain(overridden)


@pytest.mark.parametrize("key", sorted(study_lib.RESOURCES))
def test_a_bad_resource_value_names_the_field(key, tmp_path):
  with pytest.raises(study_lib.StudyError, match="resources.%s" % key):
    _study(tmp_path, "%s = -1\n" % key)
