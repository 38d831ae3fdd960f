"""Portable mode (`sbd_plugin.portable`): the same bytes on any x86-64 CPU.

The golden test runs a tiny study in portable mode and compares its
results.csv byte for byte with `tests/data/portable/results.csv`, made on the
CPU its README names: run on another x86-64 CPU with AVX, it checks the
mode's promise there. The other tests check that the mode reaches the
libraries (numpy's dispatch, OpenBLAS's kernel and threads, oneDNN off) in
every process it promises, that the study setting and the environment
switch turn it on, that every result records it, and that it removes a CPU
dependence dlib's own test shows on AVX-512 CPUs.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from evaluation import layout
from evaluation import provenance_report
from evaluation import runner
from evaluation import study as study_lib
from evaluation.executors import base
from sbd_plugin import machine
from sbd_plugin import portable
from tests import helpers

GOLDEN = os.path.join(helpers.REPO, "tests", "data", "portable",
                      "results.csv")


def golden_study_text(portable_setting="true"):
  """The golden study: 2 decoders, VAE, 4 steps, seed 0, three tiny metrics."""
  return helpers.study_toml(
      name="portable", datasets=("colored_sprites",),
      decoders=("broadcast", "deconv"),
      extra="\n[resources]\nportable = %s\n" % portable_setting)


def _without_mode():
  """This environment with portable mode's variables removed."""
  env = {k: v for k, v in os.environ.items()
         if k not in portable.NAMES and k != portable.ENV}
  env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
  return env


def _python(code, env):
  """Runs `code` in a fresh interpreter of the environment; its stdout."""
  proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=helpers.REPO,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_portable_tiny_study_reproduces_golden_results_byte_for_byte(
    tmp_path):
  spec = tmp_path / "portable.toml"
  spec.write_text(golden_study_text())
  out = tmp_path / "out"
  # The runner's own environment without the mode: the study setting alone
  # must put it into every worker.
  proc = helpers.run_tool(["sbd_study", "run", str(spec), "--output", str(out),
                           "--jobs", "1"], env=None, check=False, timeout=1800)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  for run_id in ("colored_sprites-vae-broadcast-seed0",
                 "colored_sprites-vae-deconv-seed0"):
    with open(out / "runs" / run_id / layout.DONE_FILE) as f:
      record = json.load(f)["machine"]
    assert record["portable"]["on"] is True
    assert record["portable"]["not_in_force"] == []
    assert record["onednn"] is False
    assert record["intra_op_threads"] == 1
  produced = (out / "results" / "results.csv").read_bytes()
  with open(GOLDEN, "rb") as f:
    golden = f.read()
  assert produced == golden, (
      "results.csv differs from the golden one made in portable mode on "
      "another machine (tests/data/portable/README.md); this machine: %s, "
      "%s.\n--- produced\n%s\n--- golden\n%s" % (
          machine.cpu_model(), machine.simd_level(), produced.decode(),
          golden.decode()))


def test_portable_switch_reaches_numpy_openblas_and_tensorflow():
  code = """
import json, os
import numpy.core._multiarray_umath as m
import numpy, scipy.linalg, threadpoolctl
from sbd_plugin import machine, portable
import tensorflow as tf
blas = [(i["architecture"], i["num_threads"])
        for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
print(json.dumps({"dispatch": {f: m.__cpu_features__[f] for f in m.__cpu_dispatch__},
                  "blas": blas, "onednn": machine.onednn_enabled(),
                  "intra": tf.config.threading.get_intra_op_parallelism_threads(),
                  "record": portable.record()}))
"""
  env = dict(_without_mode(), SBD_PORTABLE="1", TF_ENABLE_ONEDNN_OPTS="1")
  found = json.loads(_python(code, env).strip().splitlines()[-1])
  # numpy's dispatch above the baseline is off, whatever this CPU has.
  assert not any(found["dispatch"].values()), found["dispatch"]
  # numpy's and scipy's OpenBLAS: the AVX kernel, one thread.
  assert len(found["blas"]) >= 2
  assert all(b == ["Sandybridge", 1] for b in found["blas"]), found["blas"]
  # The hook overrode the user's TF_ENABLE_ONEDNN_OPTS=1.
  assert found["onednn"] is False
  # Set by the hook, too late for the interpreter and the loader: reported.
  assert found["record"]["on"] is True
  assert found["record"]["not_in_force"] == ["PYTHONHASHSEED",
                                             "GLIBC_TUNABLES"]


def test_portable_exports_put_every_variable_in_force_from_the_start():
  exports = _python("from sbd_plugin import portable; "
                    "print(portable.shell_exports())", _without_mode())
  env = dict(_without_mode())
  for line in exports.strip().splitlines():
    name, value = line[len("export "):].split("=", 1)
    env[name] = value.strip("'")
  record = json.loads(_python(
      "import json; from sbd_plugin import portable; "
      "print(json.dumps(portable.record()))", env))
  assert record["on"] and record["not_in_force"] == []
  assert record["variables"]["OPENBLAS_CORETYPE"] == "Sandybridge"


def test_dlib_dci_test_zero_passes_in_portable_mode():
  """dlib's own test: -2.2e-16 on AVX-512 CPUs without the mode, 0 with it.

  (With NumPy 1.26, the Python 3.11 stack; NumPy 2.2 passes either way.)
  """
  command = [sys.executable, "-m", "unittest", "-q",
             "disentanglement_lib.evaluation.metrics.dci_test."
             "DisentanglementTest.test_zero"]
  with_mode = subprocess.run(command, env=dict(_without_mode(),
                                               SBD_PORTABLE="1"),
                             capture_output=True, text=True, timeout=600)
  assert with_mode.returncode == 0, with_mode.stderr[-2000:]
  without = subprocess.run(command, env=_without_mode(), capture_output=True,
                           text=True, timeout=600)
  numpy_1 = int(np.__version__.split(".")[0]) < 2
  if "avx512f" in machine.cpu_flags() and numpy_1:
    # The CPU dependence the mode removes, seen with NumPy 1.26's AVX-512
    # kernels (NumPy 2.2, the current stack, gives exactly 0 there).
    assert without.returncode != 0
    assert "-2.220446e-16" in without.stderr
  else:
    assert without.returncode == 0, without.stderr[-2000:]


def test_worker_refuses_a_portable_run_without_the_variables():
  env = dict(portable.environment({}), OPENBLAS_CORETYPE="Haswell")
  with pytest.raises(portable.PortableModeError,
                     match="OPENBLAS_CORETYPE.*sbd_plugin.portable"):
    portable.check(env)
  portable.check({})  # Off: nothing to check.


def test_portable_switch_with_a_bad_value_names_it_and_says_what_to_do():
  with pytest.raises(ValueError, match="SBD_PORTABLE='yes': set it to 1"):
    portable.enabled({"SBD_PORTABLE": "yes"})
  assert portable.enabled({"SBD_PORTABLE": "1"})
  assert not portable.enabled({"SBD_PORTABLE": "0"})
  assert not portable.enabled({})
  # In a process start-up, the hook says so on stderr and goes on.
  proc = subprocess.run([sys.executable, "-c", "import os; print("
                         "os.environ.get('OPENBLAS_CORETYPE'))"],
                        env=dict(_without_mode(), SBD_PORTABLE="yes"),
                        capture_output=True, text=True, timeout=60)
  assert proc.stdout.strip() == "None"
  assert "portable mode NOT applied: SBD_PORTABLE='yes'" in proc.stderr


def test_portable_keeps_other_glibc_tunables_and_overrides_user_values():
  env = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.cpu.hwcaps=-AVX",
         "TF_ENABLE_ONEDNN_OPTS": "1", "OMP_NUM_THREADS": "1"}
  changed = portable.apply(env)
  pinned = {v.name: v.value for v in portable.VARIABLES}
  assert env["GLIBC_TUNABLES"] == ("glibc.malloc.arena_max=2:" +
                                   pinned["GLIBC_TUNABLES"])
  assert env["TF_ENABLE_ONEDNN_OPTS"] == "0"
  assert "TF_ENABLE_ONEDNN_OPTS" in changed
  assert "OMP_NUM_THREADS" not in changed
  assert env[portable.ENV] == "1"
  # Every variable says why it is pinned.
  assert all(v.why for v in portable.VARIABLES)


def test_portable_study_setting_puts_the_mode_into_every_task(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text(golden_study_text())
  study = study_lib.parse_study(str(spec))
  settings = runner.settings(study, str(tmp_path / "out"))
  assert settings.portable is True
  tasks = runner.tasks_left(str(tmp_path / "out"), study.runs[0],
                            base.task_env(settings))
  for task in tasks:
    env = base.worker_env(task.env)
    assert env["SBD_PORTABLE"] == "1"
    assert env["OPENBLAS_CORETYPE"] == "Sandybridge"
    assert env["TF_ENABLE_ONEDNN_OPTS"] == "0"
  # --no-portable wins over the file; off adds nothing.
  off = runner.settings(study, str(tmp_path), {"portable": False})
  assert base.task_env(off) == ()
  spec.write_text(golden_study_text('"yes"'))
  with pytest.raises(study_lib.StudyError, match="resources.portable"):
    study_lib.parse_study(str(spec))


def test_report_says_whether_the_runs_ran_in_portable_mode():
  on = {"on": True, "variables": {}, "not_in_force": []}
  late = {"on": True, "variables": {}, "not_in_force": ["GLIBC_TUNABLES"]}
  off = {"on": False, "variables": {}}
  lines = provenance_report.portable_lines(
      {"r1": {"portable": on}, "r2": {"portable": on}}, ["r1", "r2"])
  assert lines[0].startswith("Portable mode: on for all 2 runs")
  lines = provenance_report.portable_lines(
      {"r1": {"portable": on}, "r2": {"portable": off}, "r3": {"portable": late},
       "r4": {"cpu": "x"}}, ["r1", "r2", "r3", "r4"])
  assert "Portable mode: the runs differ (4 kinds)" in lines[0]
  assert "- on: `r1`" in lines
  assert "- off: `r2`" in lines
  assert "- on, but GLIBC_TUNABLES not in force: `r3`" in lines
  assert "- off (not recorded): `r4`" in lines
  # Studies without portable mode: nothing is said.
  assert provenance_report.portable_lines(
      {"r1": {"portable": off}, "r2": {}}, ["r1", "r2"]) == []
