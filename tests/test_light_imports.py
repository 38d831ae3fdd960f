"""Importing the plugin and the study runner does not load TensorFlow.

TensorFlow takes seconds to import; only a worker that trains or evaluates,
dlib's own commands and whoever imports dlib need it. Each check runs in a
fresh interpreter, where the `.pth` hook is installed as for a user.
"""
import os
import shutil
import sys

import pytest

from tests import helpers
from tests.helpers import REPO
from tests.helpers import run_tool

LIGHT_MODULES = ("sbd_plugin", "sbd_plugin.atomic", "sbd_plugin.machine",
                 "sbd_plugin.versions", "sbd_plugin.dlib_bridge",
                 "evaluation.layout", "evaluation.metrics", "evaluation.study",
                 "evaluation.runner", "evaluation.worker",
                 "evaluation.executors", "evaluation.cli",
                 "evaluation.aggregate", "evaluation.tables",
                 "evaluation.endpoints", "evaluation.gaps_cli",
                 "evaluation.compare_cli")
# Printed by the child: which heavy packages its code imported.
_HEAVY = ("import sys; print(sorted(m for m in ('tensorflow', "
          "'disentanglement_lib') if m in sys.modules))")


def _heavy_after(code):
  proc = run_tool([sys.executable, "-c", code + "\n" + _HEAVY], timeout=300)
  return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_importing_a_light_module_loads_neither_dlib_nor_tensorflow(module):
  assert _heavy_after("import %s" % module) == "[]"


def test_planning_a_study_loads_neither_dlib_nor_tensorflow():
  study = os.path.join(REPO, "gin_configs", "studies", "paper_mig.toml")
  code = ("from evaluation import cli\n"
          "assert cli.main(['plan', %r]) in (0, None)" % study)
  assert _heavy_after(code) == "[]"


def test_the_runner_process_loads_neither_dlib_nor_tensorflow(tiny_study,
                                                              tmp_path):
  # `sbd_study run --no-report` on a copy of the finished tiny study: it
  # plans, checks, skips the finished runs, starts workers for the two that
  # fail by design (TensorFlow loads in them, not here) and aggregates.
  out = helpers.copy_study(tiny_study, tmp_path / "out")
  logs = {r: out / "runs" / r / "worker.log"
          for r in helpers.TINY_STUDY_FAILING}
  before = {r: log.read_text().count("[worker] ") for r, log in logs.items()}
  code = ("from evaluation import cli\n"
          "assert cli.main(['run', %r, '--output', %r, '--no-report', "
          "'--retries', '0']) == 1" % (str(tiny_study.spec), str(out)))
  assert _heavy_after(code) == "[]"
  for run_id, log in logs.items():  # Their workers did run again.
    assert log.read_text().count("[worker] ") > before[run_id], run_id
  assert (out / "results" / "results.csv").read_bytes() == (
      tiny_study.out / "results" / "results.csv").read_bytes()


def test_a_report_from_the_results_table_loads_neither_dlib_nor_tensorflow(
    tmp_path):
  # A committed report folder (results, figures, no runs/) is rebuilt from
  # its results.csv: tables, statistics and the figures drawn from them.
  folder = str(tmp_path / "factorvae")
  shutil.copytree(os.path.join(REPO, "docs", "claims", "factorvae"), folder)
  code = ("from evaluation import cli\n"
          "assert cli.main(['report', %r, '--output', %r]) in (0, None)" %
          (os.path.join(folder, "study.toml"), folder))
  assert _heavy_after(code) == "[]"
  assert os.path.getsize(os.path.join(folder, "report.md")) > 0


def test_sbd_study_help_loads_neither_dlib_nor_tensorflow():
  code = ("from evaluation import cli\n"
          "try:\n  cli.main(['--help'])\nexcept SystemExit as e:\n"
          "  assert e.code == 0")
  assert _heavy_after(code) == "[]"


def test_the_plugins_names_still_activate_the_bridge_on_use():
  # `from sbd_plugin import spatial_broadcast_decoder` worked before dlib was
  # imported, and gave a dlib already adapted: it still does.
  out = _heavy_after(
      "import sys\nfrom sbd_plugin import spatial_broadcast_decoder\n"
      "bridge = sys.modules['sbd_plugin.dlib_bridge']\n"
      "assert bridge._ACTIVE == [f.name for f in bridge.FIXES], bridge._ACTIVE")
  assert out == "['disentanglement_lib', 'tensorflow']"


@pytest.mark.parametrize("first", ["sbd_plugin.datasets.colored_sprites",
                                   "sbd_plugin.datasets.holdout",
                                   "sbd_plugin.dlib_bridge.resumable_train"])
def test_any_first_import_order_activates_every_fix_once(first):
  # A dataset module imported first must not see dlib's hook import it
  # half-built; an explicit activate() after the hook's is a no-op.
  out = _heavy_after(
      "import sys, importlib\nimportlib.import_module(%r)\n"
      "from sbd_plugin import dlib_bridge\n"
      "import disentanglement_lib.methods.unsupervised.train\n"
      "names = [f.name for f in dlib_bridge.FIXES]\n"
      "assert dlib_bridge.activate() == names, dlib_bridge._ACTIVE" % first)
  assert out == "['disentanglement_lib', 'tensorflow']"
