"""Fault injection: kill the runner and its workers at every stage, then rerun.

Asserts what a researcher relies on after a crash, a pre-emption or Ctrl-C:
every run finishes exactly once, no run is lost, `results.csv` has one row
per run and metric and nothing corrupt, no process is left behind, and
training resumes from its checkpoint instead of starting over.
"""
import json
import os
import signal

import pandas as pd
import pytest

from tests import helpers

METRICS = ("mig", "factor_vae", "dci")
RUN = "colored_sprites-vae-deconv-seed0"
# Stages where the worker (train ... metric:dci) or the runner (aggregate,
# report) SIGKILLs itself (evaluation/faults.py).
STAGES = ["train", "postprocess", "metric:mig", "metric:factor_vae",
          "metric:dci", "aggregate", "report"]


def _setup(tmp_path, steps=4, train_extra="", metrics=METRICS):
  """A one-run study folder outside the repository, relative config paths."""
  os.symlink(helpers.TINY_METRICS, tmp_path / "tiny")
  (tmp_path / "study.toml").write_text(helpers.study_toml(
      name="faults", steps=steps, train_extra=train_extra, metric_dir="tiny",
      metrics=metrics))
  return tmp_path


def _cli(args, root, env=None):
  return helpers.sbd_study(args, cwd=root, env=env)


def _assert_complete(out):
  frame = pd.read_csv(out / "results" / "results.csv")
  assert list(frame["run_id"].unique()) == [RUN]
  assert not frame.duplicated(["run_id", "metric"]).any()
  # A metric may give several rows (DCI's three).
  assert set(METRICS) <= set(frame["metric"])
  assert frame["value"].notna().all() and frame["value"].between(0, 1).all()
  with open(out / "runs" / RUN / "DONE.json") as f:
    assert json.load(f)["run_id"] == RUN


def test_killed_at_every_stage_the_rerun_finishes_every_run_once(tmp_path):
  root = _setup(tmp_path)
  for stage in STAGES:
    # No retries: a retried task would die at the same point again.
    proc = _cli(["run", "study.toml", "--output", "out", "--retries", "0"],
                root, env={"SBD_FAULT_AT": stage})
    assert proc.returncode != 0, (stage, proc.stdout[-2000:])
    assert not helpers.processes_using(root / "out"), stage
  proc = _cli(["run", "study.toml", "--output", "out"], root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  _assert_complete(root / "out")
  # Each stage was killed once before it finished: the run trained once.
  with open(root / "out" / "runs" / RUN / "model" / "results" / "json" /
            "train_results.json") as f:
    assert json.load(f)["resumed_from_step"] in (0, 4)


@pytest.mark.parametrize("executor,sig", [
    ("local", signal.SIGTERM), ("local", signal.SIGINT),
    # submitit's jobs run under a controller process of their own.
    ("submitit-local", signal.SIGTERM), ("submitit-local", signal.SIGKILL)])
def test_stopping_the_runner_stops_its_workers(tmp_path, executor, sig):
  root = _setup(tmp_path, steps=100000,
                train_extra="checkpoint_every_steps = 10", metrics=("mig",))
  runner, run_dir = helpers.start_training(root, RUN, "--executor", executor)
  worker = helpers.worker_pid(run_dir)
  if (executor, sig) == ("local", signal.SIGTERM):
    # A second runner on the same folder is refused while the first works.
    second = _cli(["run", "study.toml", "--output", "out"], root)
    assert second.returncode == 2
    assert "is in use by another runner: sbd_study run (pid %d" % (
        runner.pid) in second.stderr
  runner.send_signal(sig)
  helpers.wait_until(lambda: not helpers.alive(worker), 15,
                     "the worker to stop")
  runner.wait(15)
  if sig == signal.SIGKILL:  # Nothing in the runner ran: its jobs notice.
    assert runner.returncode == -sig
    helpers.wait_until(lambda: not helpers.processes_using(root / "out"), 15,
                       "every process of the study to end")
  else:
    assert runner.returncode == 128 + sig
    assert not helpers.processes_using(root / "out")


def test_killed_runner_leaves_no_worker_and_training_resumes(tmp_path):
  steps = 600
  # What is checked is the training; one cheap metric finishes the run.
  root = _setup(tmp_path, steps=steps,
                train_extra="checkpoint_every_steps = 25", metrics=("mig",))
  runner, run_dir = helpers.start_training(root, RUN)
  worker = helpers.worker_pid(run_dir)
  runner.kill()  # At once: a slower kill could come after the last step.
  runner.wait(10)
  helpers.wait_until(lambda: not helpers.alive(worker), 10,
                     "the orphaned worker to die")
  assert not helpers.processes_using(root / "out")
  checkpointed = helpers.checkpoint_step(run_dir)
  assert 0 < checkpointed < steps
  proc = _cli(["run", "study.toml", "--output", "out"], root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(run_dir, "model", "results", "json",
                         "train_results.json")) as f:
    results = json.load(f)
  assert results["resumed_from_step"] >= checkpointed
  assert results["global_step"] == steps
