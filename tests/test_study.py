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
from evaluation import study as study_lib
from tests.conftest import REPO
from tests.conftest import run_tool

TINY = os.path.join(REPO, "tests", "data", "tiny_metrics")
STUDY = textwrap.dedent("""
    name = "tiny"
    datasets = ["colored_sprites", "no_such_dataset"]
    models = ["vae"]
    decoders = ["broadcast", "deconv"]
    seeds = [0]
    [train]
    bindings = ["model.training_steps = 4", "model.eval_steps = 1",
                "model.batch_size = 8"]
    [figures]
    traversals = true
    [metrics.configs]
    mig = "{tiny}/mig.gin"
    factor_vae = "{tiny}/factor_vae.gin"
    dci = "{tiny}/dci.gin"
    """).format(tiny=TINY)
GOOD = ["colored_sprites-vae-broadcast-seed0", "colored_sprites-vae-deconv-seed0"]
BAD = ["no_such_dataset-vae-broadcast-seed0", "no_such_dataset-vae-deconv-seed0"]


def _study_cli(args, check=False):
  return run_tool([sys.executable, "-m", "evaluation.cli"] + args,
                  check=check, timeout=1200)


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
  root = tmp_path_factory.mktemp("study")
  spec = root / "tiny.toml"
  spec.write_text(STUDY)
  out = root / "out"
  proc = _study_cli(["run", str(spec), "--output", str(out), "--jobs", "2"])
  return spec, out, proc


def test_failing_runs_are_listed_and_do_not_stop_the_study(finished_study):
  _, out, proc = finished_study
  assert proc.returncode == 1  # some runs failed
  assert "4 runs: 2 finished now, 0 finished earlier, 2 failed." in proc.stdout
  for run_id in BAD:
    assert "FAILED %s: ValueError: Unknown dataset name 'no_such_dataset'" % (
        run_id) in proc.stdout
    assert os.path.exists(out / "runs" / run_id / study_lib.ERROR_FILE)
    assert not os.path.exists(out / "runs" / run_id / study_lib.DONE_FILE)
  for run_id in GOOD:
    assert os.path.exists(out / "runs" / run_id / study_lib.DONE_FILE)


def test_results_are_tidy_and_record_versions(finished_study):
  _, out, _ = finished_study
  frame = pd.read_csv(out / "results" / "results.csv")
  assert sorted(frame["run_id"].unique()) == GOOD
  assert set(frame["metric"]) == {"mig", "factor_vae", "dci"}
  assert set(frame["decoder"]) == {"broadcast", "deconv"}
  assert frame["value"].between(0, 1).all()
  assert (frame["reconstruction_loss"] > 0).all()
  with open(out / "results" / "versions.json") as f:
    versions = json.load(f)
  assert versions["aggregated_with"]["tensorflow"] == "2.15.1"
  assert sorted(versions["runs"]) == GOOD
  # dlib's own aggregation produced the wide table it came from.
  assert os.path.exists(out / "results" / "dlib_results.json")


def test_runs_use_dlibs_directory_layout(finished_study):
  _, out, _ = finished_study
  run = out / "runs" / GOOD[0]
  for path in ("model/tfhub/saved_model.pb",
               "model/results/aggregate/train.json",
               "postprocessed/mean/results/aggregate/postprocess.json",
               "metrics/mean/mig/results/aggregate/evaluation.json",
               "metrics/mean/dci/results/aggregate/evaluation.json"):
    assert os.path.exists(run / path), path


def test_report_links_tables_and_figures_that_exist(finished_study):
  _, out, proc = finished_study
  assert "Report: " in proc.stdout
  report = (out / "report.md").read_text()
  assert "2 of 4 runs finished" in report
  assert "no_such_dataset-vae-deconv-seed0" in report  # listed as failed
  for link in ("figures/metric_distributions.png",
               "figures/traversals-colored_sprites-vae-broadcast.png",
               "results/comparison.csv", "results/comparison.tex"):
    assert link in report and os.path.exists(out / link), link
  assert "| colored_sprites | vae |" in report


def test_rerun_resumes_killed_runs_without_redoing_finished_work(
    finished_study, tmp_path):
  spec, out, _ = finished_study
  copy = tmp_path / "out"
  shutil.copytree(out, copy)
  killed = copy / "runs" / GOOD[0]
  # A run killed during evaluation: no DONE marker, a half-written metric.
  os.remove(killed / study_lib.DONE_FILE)
  shutil.rmtree(killed / "metrics" / "mean" / "dci" / "results")
  train_json = killed / "model" / "results" / "aggregate" / "train.json"
  trained_at = os.path.getmtime(train_json)
  proc = _study_cli(["run", str(spec), "--output", str(copy), "--no-report"])
  assert "1 finished now, 1 finished earlier, 2 failed" in proc.stdout
  assert os.path.exists(killed / study_lib.DONE_FILE)
  assert os.path.getmtime(train_json) == trained_at  # not retrained
  assert os.path.exists(killed / "metrics" / "mean" / "dci" / "results" /
                        "aggregate" / "evaluation.json")


def test_output_folder_of_another_study_is_refused(finished_study, tmp_path):
  _, out, _ = finished_study
  other = tmp_path / "other.toml"
  other.write_text(STUDY.replace('seeds = [0]', 'seeds = [1]'))
  proc = _study_cli(["run", str(other), "--output", str(out)])
  assert proc.returncode == 2
  assert "already holds results of a different study" in proc.stderr


def test_ray_executor_runs_a_study_on_a_local_cluster(tmp_path):
  spec = tmp_path / "ray.toml"
  spec.write_text(STUDY.replace('["colored_sprites", "no_such_dataset"]',
                                '["colored_sprites"]').replace(
                                    '["broadcast", "deconv"]', '["deconv"]'))
  proc = _study_cli(["run", str(spec), "--output", str(tmp_path / "out"),
                     "--executor", "ray", "--no-report"])
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1 runs: 1 finished now" in proc.stdout
  assert os.path.exists(tmp_path / "out" / "runs" / GOOD[1] /
                        study_lib.DONE_FILE)


@pytest.mark.parametrize("text,message", [
    ('name = "x"\nmodels = ["vae"]', "datasets"),
    ('bogus = 1\n' + STUDY, "Unknown study keys ['bogus']"),
    (STUDY.replace('"deconv"]', '"nodecoder"]'),
     "gin_configs/nodecoder_vae.gin"),
    (STUDY.replace("seeds = [0]", "seeds = [0, 0]"),
     "several runs with the same id (colored_sprites-vae-broadcast-seed0,"),
])
def test_malformed_study_files_say_what_to_fix(tmp_path, text, message):
  spec = tmp_path / "bad.toml"
  spec.write_text(text)
  with pytest.raises(study_lib.StudyError, match=re.escape(message)):
    study_lib.parse_study(str(spec))


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
  spec.write_text(STUDY.replace('["vae"]', '["vae", "factorvae"]').replace(
      '"colored_sprites", "no_such_dataset"', '"colored_sprites"').replace(
          '"broadcast", "deconv"', '"deconv"'))
  study = study_lib.parse_study(str(spec))
  rows = []
  for run, beta, gamma in zip(study.runs, (4.0, float("nan")),
                              (float("nan"), 30.0)):
    os.makedirs(study_lib.run_dir(str(tmp_path), run))
    open(os.path.join(study_lib.run_dir(str(tmp_path), run),
                      study_lib.DONE_FILE), "w").close()
    rows.append({"train_config.model.name": "'%s'" % run.run_id,
                 "evaluation_config.evaluation.evaluation_fn": "@mig",
                 "evaluation_results.discrete_mig": 0.1,
                 "train_config.vae.beta": beta,
                 "train_config.factor_vae.gamma": gamma,
                 "train_results.reconstruction_loss": 1.0,
                 "train_results.kl_loss": 2.0, "train_results.elbo": 3.0})
  frame = aggregate.tidy_results(study, str(tmp_path), pd.DataFrame(rows))
  assert dict(zip(frame["model"], frame["beta"])) == {"vae": 4.0,
                                                       "factorvae": 30.0}
