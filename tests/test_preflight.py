"""Checks before launch: every problem of a study, listed before any worker.

`sbd_study plan` and `run` resolve dataset names through the registry, find
every model/decoder config, parse every gin file and binding against the
configurables dlib and the plugin register, and check metric names; a
worker's error that a retry cannot change is not retried, and the summary
shows its line whole with the path of its error.log.
"""
import glob
import json
import os
import subprocess
import sys
import textwrap

import pytest

from evaluation import layout
from evaluation import preflight
from evaluation import runner
from evaluation import study as study_lib
from evaluation import worker
from evaluation.executors import base
from tests.helpers import REPO
from tests.helpers import run_tool

TYPOS = textwrap.dedent("""\
    name = "typos"
    datasets = ["dsprite", "colored_sprites"]
    models = ["vae"]
    decoders = ["broadcast", "deconvv"]
    seeds = [0]
    [train]
    configs = ["extra.gin"]
    bindings = ["model.training_steps = 4", "vae.betaa = 2",
                "decoder.decoder_fn = @spatial_broadcast_decodr"]
    [sweep]
    "factor_vae.gama" = [10.0]
    [metrics]
    names = ["mig"]
    bindings = ["mig.num_trian = 5"]
    [dataset_bindings]
    colored_sprites = ["colored_sprite.num_hue_bins = 4"]
    [figures]
    heldout = ["colored_sprites", "colored_sprites_holdout_tst"]
    """)
# A training config of the study: line 3 misspells a parameter, line 4
# includes a file that does not exist.
EXTRA_GIN = ("# extra settings\nmodel.batch_size = 8\nmodel.eval_step = 1\n"
             "include 'gin_configs/common/no_such.gin'\n")


def _cli(args):
  return run_tool([sys.executable, "-m", "evaluation.cli"] + args,
                  check=False, timeout=900)


@pytest.fixture(scope="module")
def typos(tmp_path_factory):
  root = tmp_path_factory.mktemp("typos")
  (root / "study.toml").write_text(TYPOS)
  (root / "extra.gin").write_text(EXTRA_GIN)
  return root


@pytest.fixture(scope="module")
def planned(typos):
  return _cli(["plan", str(typos / "study.toml")])


def test_plan_lists_every_problem_and_exits_non_zero(typos, planned):
  assert planned.returncode == 2
  assert "1 runs" not in planned.stdout and not planned.stdout.strip()
  err = planned.stderr
  assert "%s cannot run, 10 problems:" % (typos / "study.toml") in err
  extra = typos / "extra.gin"
  for line in (
      "datasets[0]: unknown dataset name 'dsprite' (did you mean "
      "'dsprites_full'?); valid names: ",
      "figures.heldout[1]: unknown dataset name 'colored_sprites_holdout_tst' "
      "(did you mean 'colored_sprites_holdout_test'?)",
      "decoders x models (decoder 'deconvv', model 'vae'): config file "
      "'gin_configs/deconvv_vae.gin' not found",
      "did you mean decoder 'deconv'?",
      "train.bindings[1] `vae.betaa = 2`: configurable 'vae' has no "
      "parameter 'betaa' (did you mean 'beta'?)",
      "train.bindings[2] `decoder.decoder_fn = @spatial_broadcast_decodr`: "
      "reference @spatial_broadcast_decodr: no configurable "
      "'spatial_broadcast_decodr' is registered (did you mean "
      "'spatial_broadcast_decoder'?)",
      "sweep.\"factor_vae.gama\": 'factor_vae.gama' (did you mean "
      "'factor_vae.gamma'?) is not a model's regularisation strength",
      "metrics.bindings[0] `mig.num_trian = 5`: configurable 'mig' has no "
      "parameter 'num_trian' (did you mean 'num_train'?)",
      "dataset_bindings.colored_sprites[0] `colored_sprite.num_hue_bins = 4`:"
      " no configurable 'colored_sprite' is registered (did you mean "
      "'colored_sprites'?)",
      "%s:3 (train.configs[0]): configurable 'model' has no parameter "
      "'eval_step' (did you mean 'eval_steps'?)" % extra,
      "%s:4 (train.configs[0]): included file "
      "'gin_configs/common/no_such.gin' not found" % extra):
    assert line in err, line


def test_run_starts_nothing_for_a_study_with_problems(typos, planned):
  out = typos / "out"
  proc = _cli(["run", str(typos / "study.toml"), "--output", str(out)])
  assert proc.returncode == 2
  assert "cannot run, 10 problems" in proc.stderr
  assert not out.exists()  # No folder, no worker, no queue wait.


def test_a_stock_dataset_without_its_file_is_found_before_launch(tmp_path,
                                                                  monkeypatch):
  monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(tmp_path / "data"))
  found = preflight.dataset_problems([("datasets[0]", "dsprites_full"),
                                      ("datasets[1]", "colored_sprites")])
  assert found == [
      "datasets[0]: dlib's 'dsprites_full' reads %s, which does not exist (set "
      "$DISENTANGLEMENT_LIB_DATA, or run dlib_download_data there; the "
      "plugin's generated datasets, e.g. colored_sprites, need no file)" %
      (tmp_path / "data" / "dsprites" /
       "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz")]


def test_unknown_metric_names_are_listed_together(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text(TYPOS.replace('names = ["mig"]', 'names = ["mgi", "dcii"]'))
  with pytest.raises(study_lib.StudyError,
                     match=r"lists 'mgi' \(did you mean 'mig'\?\), 'dcii' "
                     r"\(did you mean 'dci'\?\), which are not one of dlib's "
                     "metrics"):
    study_lib.parse_study(str(spec))


def test_the_ready_studies_pass_the_check(tmp_path):
  """Every study file we ship, checked in one child as `plan` checks one."""
  merged = {"files": [], "bindings": [], "datasets": []}
  for path in sorted(glob.glob(os.path.join(REPO, "gin_configs", "studies",
                                            "*.toml"))):
    for key, values in preflight.items(study_lib.parse_study(path)).items():
      merged[key] += values
  assert len(merged["bindings"]) > 20 and len(merged["files"]) > 20
  given, found = tmp_path / "items.json", tmp_path / "problems.json"
  given.write_text(json.dumps(merged))
  subprocess.run([sys.executable, "-m", "evaluation.preflight", str(given),
                  str(found)], env=base.worker_env(), cwd=REPO, check=True,
                 capture_output=True)
  assert json.loads(found.read_text())["problems"] == []


def _one_run_study(path, dataset="colored_sprites", extra=""):
  """Writes a study of one run (VAE, broadcast, seed 0) to `path`."""
  path.write_text(textwrap.dedent("""\
      datasets = ["%s"]
      models = ["vae"]
      decoders = ["broadcast"]
      seeds = [0]
      """) % dataset + extra)
  return path


def test_the_check_imports_tensorflow_only_in_its_child(tmp_path):
  spec = _one_run_study(tmp_path / "ok.toml")
  code = ("import sys\nfrom evaluation import cli\n"
          "assert cli.main(['plan', sys.argv[1]]) == 0\n"
          "print('tensorflow' in sys.modules)\n")
  proc = subprocess.run([sys.executable, "-c", code, str(spec)], cwd=REPO,
                        env=base.worker_env(), capture_output=True, text=True,
                        check=True)
  assert proc.stdout.splitlines() == [
      "colored_sprites-vae-broadcast-seed0", "1 runs", "False"]


@pytest.mark.parametrize("error,expected", [
    (ValueError("scale_factor must be in (0, 1]"), True),
    (TypeError("unexpected keyword"), True),
    (SyntaxError("bad gin"), True),
    (RuntimeError("Required bindings for `model` not provided in config"),
     True),
    (OSError(28, "No space left on device"), False),
    (RuntimeError("CUDA error: out of memory"), False),
    (KeyboardInterrupt(), False),
])
def test_which_worker_errors_a_retry_cannot_change(error, expected):
  assert worker.cannot_retry(error) is expected


class _FailingExecutor(base.Executor):
  """Ends every submitted task with the given error."""

  def __init__(self, error):
    super(_FailingExecutor, self).__init__(base.Settings(output_dir="/x"))
    self.error = error
    self.pending = []
    self.submitted = 0

  def submit(self, tasks):
    self.submitted += len(tasks)
    self.pending += tasks

  def wait(self, timeout):
    ended, self.pending = [(t, self.error) for t in self.pending], []
    return ended


@pytest.mark.parametrize("code,attempts", [(worker.CANNOT_RETRY_EXIT, 1),
                                           (1, 3)])
def test_errors_a_retry_cannot_change_are_not_retried(code, attempts):
  fake = _FailingExecutor(base.exit_error(code))
  pipeline = runner.Pipeline(fake, {"train": 1, "evaluate": 1}, retries=2)
  pipeline.add([base.Task("a", "train", ("true",), "/dev/null")])
  ended = []
  while pipeline.busy():
    pipeline.start_ready()
    ended += pipeline.collect(0)
  assert fake.submitted == attempts
  assert ended == [("a", base.exit_error(code))]


def test_the_summary_shows_the_whole_error_line_and_its_log(tmp_path):
  run = study_lib.Run(
      run_id="r", dataset="colored_sprites", model="vae", decoder="deconv",
      seed=0, sweep=(), model_configs=(), train_bindings=(),
      dataset_bindings=(), postprocess_config="", metric_configs=(),
      metric_bindings=())
  directory = tmp_path / "runs" / "r"
  directory.mkdir(parents=True)
  message = "ValueError: " + "a long explanation " * 30
  traceback = ("Traceback (most recent call last):\n  File \"x.py\"\n%s\n"
               "  In call to configurable 'model'\n" % message)
  # What a worker writes: the traceback to error.log and to its output.
  (directory / layout.ERROR_FILE).write_text(traceback)
  (directory / layout.WORKER_LOG).write_text(
      "%s (pid 1)\n%s" % (worker.ATTEMPT_MARKER, traceback))
  outcome = runner._ended(str(tmp_path), run, base.exit_error(4))  # pylint: disable=protected-access
  summary = runner.summarize([outcome])
  assert "  FAILED r: %s\n" % message.rstrip() in summary
  assert "    full error: %s" % (directory / layout.ERROR_FILE) in summary


def _counting_child(monkeypatch, answer=None):
  """Counts the checks that reach the child (the real one unless `answer`)."""
  calls = []
  real = preflight._child_answer  # pylint: disable=protected-access

  def child(given, env):
    calls.append(given)
    return answer if answer is not None else real(given, env)

  monkeypatch.setattr(preflight, "_child_answer", child)
  return calls


def test_a_passed_check_is_remembered_until_an_included_gin_file_changes(
    tmp_path, monkeypatch):
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path / "cache"))
  monkeypatch.chdir(REPO)
  included = tmp_path / "included.gin"
  included.write_text("model.batch_size = 8\n")
  (tmp_path / "extra.gin").write_text("include '%s'\n" % included)
  spec = _one_run_study(tmp_path / "study.toml",
                        extra='[train]\nconfigs = ["extra.gin"]\n')
  calls = _counting_child(monkeypatch)
  preflight.check(str(spec))
  preflight.check(str(spec))  # Nothing changed: no child.
  assert len(calls) == 1
  included.write_text("model.batch_sise = 8\n")  # Only the include changes.
  for _ in range(2):  # A failed check is not remembered.
    with pytest.raises(study_lib.StudyError, match="batch_sise"):
      preflight.check(str(spec))
  assert len(calls) == 3
  included.write_text("model.batch_size = 16\n")
  preflight.check(str(spec))
  preflight.check(str(spec))
  assert len(calls) == 4


def test_a_dataset_that_reads_a_file_is_checked_every_time(tmp_path,
                                                           monkeypatch):
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path / "cache"))
  spec = _one_run_study(tmp_path / "study.toml", dataset="dsprites_full")
  calls = _counting_child(monkeypatch, answer=([], []))
  preflight.check(str(spec))
  preflight.check(str(spec))
  assert len(calls) == 2
