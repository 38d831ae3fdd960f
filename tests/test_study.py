"""The study runner: a tiny real study, failure isolation, resume, Ray, errors."""
import json
import os
import re
import shutil
import sys
import textwrap

import pandas as pd
import pytest

from evaluation import aggregate
from evaluation import layout
from evaluation import study as study_lib
from tests import helpers

STUDY = helpers.tiny_study_text()
GOOD = helpers.TINY_STUDY_RUNS
BAD = helpers.TINY_STUDY_FAILING
ONE_DATASET = helpers.tiny_study_text(datasets=("colored_sprites",))


def _study_cli(args, check=False):
  return helpers.run_tool([sys.executable, "-m", "evaluation.cli"] + args,
                          check=check, timeout=1200)


def test_failing_runs_are_listed_and_do_not_stop_the_study(tiny_study):
  out = tiny_study.out
  assert tiny_study.returncode == 1  # some runs failed
  assert "4 runs: 2 finished now, 0 finished earlier, 2 failed." in (
      tiny_study.stdout)
  for run_id in BAD:
    assert "FAILED %s: ValueError: scale_factor must be in (0, 1], got 2.0." % (
        run_id) in tiny_study.stdout
    error_log = out / "runs" / run_id / layout.ERROR_FILE
    assert "    full error: %s\n" % error_log in tiny_study.stdout
    assert os.path.exists(error_log)
    # Not retried (the default is 1 retry): the error cannot change.
    log = (out / "runs" / run_id / "worker.log").read_text()
    assert log.count("[worker] train phase of") == 1
    assert not os.path.exists(out / "runs" / run_id / layout.DONE_FILE)
  for run_id in GOOD:
    assert os.path.exists(out / "runs" / run_id / layout.DONE_FILE)


def test_results_are_tidy_and_record_versions(tiny_study):
  out = tiny_study.out
  frame = pd.read_csv(out / "results" / "results.csv")
  assert sorted(frame["run_id"].unique()) == GOOD
  # DCI gives three table rows: disentanglement, completeness, informativeness.
  assert set(frame["metric"]) == {"mig", "factor_vae", "dci",
                                  "dci_completeness", "dci_informativeness"}
  assert set(frame["decoder"]) == {"broadcast", "deconv"}
  assert frame["value"].between(0, 1).all()
  assert (frame["reconstruction_loss"] > 0).all()
  with open(out / "results" / "versions.json") as f:
    versions = json.load(f)
  # The running stack's TensorFlow, and the stack's name (versions.STACKS).
  from sbd_plugin import versions as stack_versions  # pylint: disable=g-import-not-at-top
  assert versions["aggregated_with"]["tensorflow"] == (
      stack_versions.NUMERIC_PINS["tensorflow"])
  assert versions["aggregated_with"]["stack"] == stack_versions.STACK
  assert sorted(versions["runs"]) == GOOD
  # dlib's own aggregation produced the wide table it came from.
  assert os.path.exists(out / "results" / "dlib_results.json")


def test_runs_use_dlibs_directory_layout(tiny_study):
  run = tiny_study.out / "runs" / GOOD[0]
  for path in ("model/tfhub/saved_model.pb",
               "model/results/aggregate/train.json",
               "postprocessed/mean/results/aggregate/postprocess.json",
               "metrics/mean/mig/results/aggregate/evaluation.json",
               "metrics/mean/dci/results/aggregate/evaluation.json"):
    assert os.path.exists(run / path), path


def test_report_links_tables_and_figures_that_exist(tiny_study):
  out = tiny_study.out
  assert "Report: " in tiny_study.stdout
  report = (out / "report.md").read_text()
  assert "2 of 4 runs finished" in report
  assert BAD[1] in report  # listed as failed
  for link in ("figures/metric_distributions.png",
               "figures/traversals-colored_sprites-vae-broadcast.png",
               "results/comparison.csv", "results/comparison.tex"):
    assert link in report and os.path.exists(out / link), link
  assert "| colored_sprites | vae |" in report


def test_rerun_redoes_killed_and_truncated_work_not_finished_work(
    tiny_study, tmp_path):
  copy = helpers.copy_study(tiny_study, tmp_path / "out")
  # One run killed during evaluation: no DONE marker, a metric's folder
  # half-written.
  killed = copy / "runs" / GOOD[0]
  os.remove(killed / layout.DONE_FILE)
  shutil.rmtree(killed / "metrics" / "mean" / "dci" / "results")
  # The other killed while writing: a result and the marker cut short.
  truncated = copy / "runs" / GOOD[1]
  mig = (truncated / "metrics" / "mean" / "mig" / "results" / "aggregate" /
         "evaluation.json")
  mig.write_text(mig.read_text()[:40])
  (truncated / layout.DONE_FILE).write_text('{"run_id": ')
  trained_at = {run_id: os.path.getmtime(
      copy / "runs" / run_id / "model" / "results" / "aggregate" /
      "train.json") for run_id in GOOD}
  proc = _study_cli(["run", str(tiny_study.spec), "--output", str(copy),
                     "--no-report", "--retries", "0"])
  assert "2 finished now, 0 finished earlier, 2 failed" in proc.stdout
  for run_id in GOOD:
    with open(copy / "runs" / run_id / layout.DONE_FILE) as f:
      assert json.load(f)["run_id"] == run_id
    assert os.path.getmtime(
        copy / "runs" / run_id / "model" / "results" / "aggregate" /
        "train.json") == trained_at[run_id]  # not retrained
  assert os.path.exists(killed / "metrics" / "mean" / "dci" / "results" /
                        "aggregate" / "evaluation.json")
  json.loads(mig.read_text())


def test_an_output_path_that_is_a_file_is_refused(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text(STUDY)
  taken = tmp_path / "taken"
  taken.write_text("a file")
  proc = _study_cli(["run", str(spec), "--output", str(taken)])
  assert proc.returncode == 2
  assert "--output %s is a file, not a folder" % taken in proc.stderr
  assert taken.read_text() == "a file"


def test_output_folder_of_another_study_is_refused(tiny_study, tmp_path):
  other = tmp_path / "other.toml"
  other.write_text(STUDY.replace('seeds = [0]', 'seeds = [1]'))
  proc = _study_cli(["run", str(other), "--output", str(tiny_study.out)])
  assert proc.returncode == 2
  assert "already holds results of a different study" in proc.stderr


def test_ray_executor_runs_a_study_on_a_local_cluster(tmp_path):
  spec = tmp_path / "ray.toml"
  # One deconv run, no DCI: its fits check nothing about the executor.
  spec.write_text(helpers.study_toml(metrics=("mig", "factor_vae")))
  proc = _study_cli(["run", str(spec), "--output", str(tmp_path / "out"),
                     "--executor", "ray", "--no-report", "--cpus-per-run",
                     "1", "--retries", "0"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1 runs: 1 finished now" in proc.stdout
  # Both tasks ran, the training and then the evaluation (ray.wait on refs).
  log = (tmp_path / "out" / "runs" / GOOD[1] / "worker.log").read_text()
  assert re.findall(r"\[worker\] (\w+) phase", log) == ["train", "evaluate"]
  with open(tmp_path / "out" / "runs" / GOOD[1] / layout.DONE_FILE) as f:
    timings = json.load(f)["timings"]
  assert list(timings)[:2] == ["train", "postprocess"]


BASE = textwrap.dedent("""
    name = "x"
    datasets = ["colored_sprites"]
    models = ["vae"]
    decoders = ["broadcast", "deconv"]
    seeds = [0]
    """)
PLAIN_NAME = "must be a plain name: a letter, then letters, digits or '_'"
# Every bad study file we know of, and the start of what the user is told.
BAD_STUDIES = [
    ('name = "x"\nmodels = ["vae"]', "Study field `datasets` is missing"),
    ("bogus = 1\n" + STUDY, "Unknown study key `bogus`. Valid keys:"),
    (STUDY.replace('"deconv"]', '"nodecoder"]'),
     "gin_configs/nodecoder_vae.gin"),
    (STUDY.replace("seeds = [0]", "seeds = [0, 0]"),
     "Study field `seeds`: lists 0 more than once"),
    (BASE + '[train]\nbindingz = ["a.b = 1"]',
     "Unknown study key `train.bindingz` (did you mean `train.bindings`?)"),
    (BASE + "[figures]\ntraversalz = true",
     "Unknown study key `figures.traversalz` (did you mean "
     "`figures.traversals`?)"),
    (BASE + '[train]\nbindings = "model.x = 1"',
     "Study field `train.bindings`: must be a list of gin binding strings"),
    (BASE + '[metrics]\nnames = "mig"',
     "Study field `metrics.names`: must be a list of plain names"),
    (BASE.replace("seeds = [0]", "seeds = [true]"),
     "Study field `seeds[0]`: must be a whole number from 0 to"),
    (BASE.replace("seeds = [0]", "seeds = [1.5]"),
     "Study field `seeds[0]`: must be a whole number"),
    (BASE.replace("seeds = [0]", "seeds = [-1]"),
     "Study field `seeds[0]`: must be a whole number"),
    (BASE + 'train = "x"', "Study field `train`: must be a table"),
    (BASE.replace('["vae"]', "[]"), "Study field `models`: must not be empty"),
    (BASE.replace('["colored_sprites"]', '["../../somewhere"]'),
     "Study field `datasets[0]`: " + PLAIN_NAME),
    (BASE.replace('["colored_sprites"]', '["/tmp/x"]'),
     "Study field `datasets[0]`: " + PLAIN_NAME),
    (BASE.replace('"deconv"]', '"de/conv"]'),
     "Study field `decoders[1]`: " + PLAIN_NAME),
    (BASE.replace('["vae"]', '["v.ae"]'),
     "Study field `models[0]`: " + PLAIN_NAME),
    (BASE.replace('["colored_sprites"]',
                  '["a\'\\nmodel.training_steps = 1"]'),
     "Study field `datasets[0]`: " + PLAIN_NAME),
    (BASE + '[sweep]\n"x; y" = [1]',
     "Study field `sweep`: key 'x; y' is not a gin parameter"),
    (BASE + '[sweep]\n"vae.beta" = []',
     'Study field `sweep."vae.beta"`: must not be empty'),
    (BASE + '[sweep]\n"vae.beta" = [{a = 1}]',
     'Study field `sweep."vae.beta"[0]`: must hold strings, numbers'),
    (BASE + '[train]\nbindings = ["a.b = 1\\nc.d = 2"]',
     "Study field `train.bindings[0]`: must be one gin binding per list item"),
    ('baseline = "foo"\n' + BASE,
     "Study field `baseline` is 'foo', which is not in `decoders`"),
    (BASE + '[dataset_bindings]\nother = ["a.b = 1"]',
     "Study field `dataset_bindings` names 'other', which is not in "
     "`datasets`"),
    (BASE + "[train]\ncheckpoint_every_steps = 0",
     "Study field `train.checkpoint_every_steps`: must be a whole number >= 1"),
    (BASE + '[figures]\nlatent_geometry = ["posX"]',
     "Study field `figures.latent_geometry`: must be a list of two"),
    ("datasets = [", "Cannot read study file"),
    (BASE + '[resources]\npartition = "gpu\\n#SBATCH --x"',
     "Study field `resources.partition`: must be a SLURM partition name"),
    (BASE + "[resources]\ngpus_per_run = -0.5",
     "Study field `resources.gpus_per_run`: must be a number >= 0"),
    (BASE + "[resources]\nretries = true",
     "Study field `resources.retries`: must be a whole number >= 0"),
    (BASE + "[resources]\ngpu_per_run = 1",
     "Unknown study key `resources.gpu_per_run` (did you mean "
     "`resources.gpus_per_run`?)"),
]


@pytest.mark.parametrize("text,message", BAD_STUDIES)
def test_malformed_study_files_say_what_to_fix(tmp_path, text, message):
  spec = tmp_path / "bad.toml"
  spec.write_text(text)
  with pytest.raises(study_lib.StudyError, match=re.escape(message)):
    study_lib.parse_study(str(spec))


def test_values_reach_gin_as_single_literals():
  """A quote or newline in a value stays inside one gin string."""
  import gin  # pylint: disable=g-import-not-at-top
  tricky = "a'\nmodel.training_steps = 1"
  gin.clear_config()
  try:
    gin.parse_config("sbd_literal_probe.value = %s" %
                     study_lib.gin_literal(tricky))
  except ValueError:
    pass  # No configurable of that name: what matters is no second binding.
  finally:
    gin.clear_config()
  assert study_lib.gin_literal(tricky) == repr(tricky)
  assert study_lib.gin_literal("@spatial_broadcast_decoder") == (
      "@spatial_broadcast_decoder")
  assert study_lib.gin_literal(1.5) == "1.5"


@pytest.mark.parametrize("run_id", ["a/b", "..", "x..y", "/abs", "a b", ""])
def test_run_ids_are_single_safe_folder_names(run_id):
  with pytest.raises(study_lib.StudyError, match="not a plain folder name"):
    study_lib.check_run_id(run_id)


def test_sweep_values_cannot_make_a_path(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text(BASE + '[sweep]\n"vae.beta" = ["../../x", "a/b"]')
  runs = study_lib.parse_study(str(spec)).runs
  for run in runs:
    assert "/" not in run.run_id and ".." not in run.run_id
  assert "vae.beta = '../../x'" in runs[0].train_bindings


@pytest.mark.parametrize("models, key, message", [
    (["vae"], "model.training_steps",
     "'model.training_steps' is not a model's regularisation strength, the "
     "one setting a sweep may vary (vae.beta, factor_vae.gamma, "),
    (["vae", "factorvae"], "vae.beta",
     "model factorvae ignores 'vae.beta' (factorvae's is factor_vae.gamma), "
     "so its runs would repeat each other"),
])
def test_a_sweep_the_tables_cannot_show_is_refused(tmp_path, models, key,
                                                   message):
  """Runs differing in anything but the regularisation strength would share
  one table row (and its n, median and test)."""
  spec = tmp_path / "s.toml"
  spec.write_text(BASE.replace('models = ["vae"]', "models = %s" % json.dumps(
      models)) + '[sweep]\n"%s" = [1, 4]' % key)
  with pytest.raises(study_lib.StudyProblems) as raised:
    study_lib.parse_study(str(spec))
  assert 'sweep."%s": ' % key in str(raised.value)
  assert message in str(raised.value)


def test_plan_lists_the_cartesian_product_with_sweeps(tmp_path):
  spec = tmp_path / "sweep.toml"
  spec.write_text(STUDY.replace(
      "[train]", '[sweep]\n"vae.beta" = [1.0, 4.0]\n[train]'))
  study = study_lib.parse_study(str(spec))
  assert len(study.runs) == 2 * 2 * 2  # datasets x decoders x betas
  run = study.runs[0]
  assert run.run_id == "colored_sprites-vae-broadcast-beta1.0-seed0"
  assert "vae.beta = 1.0" in run.train_bindings
  assert "model.name = '%s'" % run.run_id in run.train_bindings
  assert run.model_configs[0].endswith("gin_configs/broadcast_vae.gin")


def test_unswept_beta_is_read_from_each_models_own_training_config(tmp_path):
  """dlib's aggregate has every model's columns, NaN where one does not apply."""
  spec = tmp_path / "mixed.toml"
  spec.write_text(ONE_DATASET.replace(
      '["vae"]', '["vae", "factorvae"]').replace('"broadcast", "deconv"',
                                                  '"deconv"'))
  study = study_lib.parse_study(str(spec))
  rows = []
  for run, beta, gamma in zip(study.runs, (4.0, float("nan")),
                              (float("nan"), 30.0)):
    directory = study_lib.run_dir(str(tmp_path), run)
    # A finished run: its marker and every step's result parse.
    for path in [os.path.join(directory, layout.DONE_FILE)] + [
        os.path.join(step_dir, "results", "aggregate", kind + ".json")
        for step_dir, kind in study_lib.step_results(directory, run)]:
      os.makedirs(os.path.dirname(path), exist_ok=True)
      with open(path, "w") as f:
        f.write("{}")
    rows.append({"train_config.model.name": "'%s'" % run.run_id,
                 "evaluation_config.evaluation.evaluation_fn": "@mig",
                 "evaluation_config.evaluation.name": "'mig'",
                 "evaluation_results.discrete_mig": 0.1,
                 "train_config.vae.beta": beta,
                 "train_config.factor_vae.gamma": gamma,
                 "train_results.reconstruction_loss": 1.0,
                 "train_results.kl_loss": 2.0, "train_results.elbo": 3.0})
  frame = aggregate.tidy_results(study, str(tmp_path), pd.DataFrame(rows))
  assert dict(zip(frame["model"], frame["beta"])) == {"vae": 4.0,
                                                       "factorvae": 30.0}
  # DIP-VAE's and AnnealedVAE's strengths are read too.
  for key, value in (("dip_vae.lambda_od", 10.0), ("annealed_vae.c_max", 25.0)):
    row = dict(rows[0], **{"train_config.vae.beta": float("nan"),
                           "train_config." + key: value})
    frame = aggregate.tidy_results(study, str(tmp_path),
                                   pd.DataFrame([row, rows[1]]))
    assert dict(zip(frame["model"], frame["beta"]))["vae"] == value, key


def test_a_missing_external_model_file_names_its_field(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text(BASE + textwrap.dedent("""
      [[external]]
      name = "mine"
      files = ["models/seed0.onnx"]
      """))
  with pytest.raises(study_lib.StudyError) as raised:
    study_lib.parse_study(str(spec))
  assert ("Study field `external[0].files[0]`: external model file "
          "'models/seed0.onnx' not found" in str(raised.value))
