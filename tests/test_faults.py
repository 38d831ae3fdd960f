"""Fault injection: kill the runner and its workers at every stage, then rerun.

Asserts what a researcher relies on after a crash, a pre-emption or Ctrl-C:
every run finishes exactly once, no run is lost, `results.csv` has one row
per run and metric and nothing corrupt, no process is left behind, and
training resumes from its checkpoint instead of starting over.
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from tests.helpers import REPO
from tests.helpers import run_tool

TINY = os.path.join(REPO, "tests", "data", "tiny_metrics")
METRICS = ("mig", "factor_vae", "dci")
RUNS = ["colored_sprites-vae-deconv-seed0", "colored_sprites-vae-deconv-seed1"]
# Stages where the worker (train ... metric:dci) or the runner (aggregate,
# report) SIGKILLs itself (evaluation/faults.py).
STAGES = ["train", "postprocess", "metric:mig", "metric:factor_vae",
          "metric:dci", "aggregate", "report"]


def _study(steps, seeds="[0, 1]", extra=""):
  return textwrap.dedent("""
      name = "faults"
      datasets = ["colored_sprites"]
      models = ["vae"]
      decoders = ["deconv"]
      seeds = {seeds}
      [train]
      bindings = ["model.training_steps = {steps}", "model.eval_steps = 1",
                  "model.batch_size = 8"]
      {extra}
      [figures]
      traversals = false
      [metrics.configs]
      mig = "tiny/mig.gin"
      factor_vae = "tiny/factor_vae.gin"
      dci = "tiny/dci.gin"
      """).format(steps=steps, seeds=seeds, extra=extra)


def _setup(tmp_path, text):
  """A study folder outside the repository, with relative config paths."""
  os.symlink(TINY, tmp_path / "tiny")
  (tmp_path / "study.toml").write_text(text)
  return tmp_path


def _cli(args, cwd, env=None, check=False):
  return run_tool(["sbd_study"] + args, cwd=str(cwd), env=env, check=check,
                  timeout=900)


def _processes_using(path):
  """Pids of live processes whose command line mentions `path`."""
  pids = []
  for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) == os.getpid():
      continue
    try:
      with open("/proc/%s/cmdline" % pid, "rb") as f:
        cmdline = f.read().decode("utf-8", "replace")
      with open("/proc/%s/stat" % pid) as f:
        state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
      continue
    if str(path) in cmdline and state != "Z":
      pids.append(int(pid))
  return pids


def _wait_until(predicate, timeout, what):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(0.2)
  raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


def _assert_complete(out):
  frame = pd.read_csv(out / "results" / "results.csv")
  assert sorted(frame["run_id"].unique()) == RUNS
  assert not frame.duplicated(["run_id", "metric"]).any()
  for run_id in RUNS:  # A metric may give several rows (DCI's three).
    assert set(METRICS) <= set(frame["metric"][frame["run_id"] == run_id])
  assert frame["value"].notna().all() and frame["value"].between(0, 1).all()
  for run_id in RUNS:
    with open(out / "runs" / run_id / "DONE.json") as f:
      assert json.load(f)["run_id"] == run_id


def test_killed_at_every_stage_the_rerun_finishes_every_run_once(tmp_path):
  root = _setup(tmp_path, _study(steps=4))
  for stage in STAGES:
    # No retries: a retried task would die at the same point again.
    proc = _cli(["run", "study.toml", "--output", "out", "--jobs", "2",
                 "--retries", "0"], root, env={"SBD_FAULT_AT": stage})
    assert proc.returncode != 0, (stage, proc.stdout[-2000:])
    assert not _processes_using(root / "out"), stage
  proc = _cli(["run", "study.toml", "--output", "out", "--jobs", "2"], root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  _assert_complete(root / "out")
  # Each stage was killed once before it finished: every run trained once.
  for run_id in RUNS:
    with open(root / "out" / "runs" / run_id / "model" / "results" / "json" /
              "train_results.json") as f:
      assert json.load(f)["resumed_from_step"] in (0, 4)


def test_a_truncated_result_is_redone_not_trusted(tmp_path):
  root = _setup(tmp_path, _study(steps=4, seeds="[0]"))
  out = root / "out"
  assert _cli(["run", "study.toml", "--output", "out"], root).returncode == 0
  mig = (out / "runs" / RUNS[0] / "metrics" / "mean" / "mig" / "results" /
         "aggregate" / "evaluation.json")
  mig.write_text(mig.read_text()[:40])  # Cut short, as by a kill.
  (out / "runs" / RUNS[0] / "DONE.json").write_text('{"run_id": ')
  proc = _cli(["run", "study.toml", "--output", "out"], root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1 runs: 1 finished now" in proc.stdout
  json.loads(mig.read_text())
  frame = pd.read_csv(out / "results" / "results.csv")
  assert set(METRICS) <= set(frame["metric"])
  assert not frame.duplicated(["run_id", "metric"]).any()


def _worker_pid(run_dir):
  with open(os.path.join(run_dir, ".lock")) as f:
    return int(re.search(r"pid (\d+)", f.read()).group(1))


def _alive(pid):
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def _checkpoint_step(run_dir):
  """Step of the newest checkpoint of the run's model (-1 if none)."""
  try:
    text = (run_dir / "model" / "tf_checkpoint" / "checkpoint").read_text()
  except OSError:
    return -1
  found = re.search(r'model_checkpoint_path: "model.ckpt-(\d+)"', text)
  return int(found.group(1)) if found else -1


def _start_training(root, *flags):
  """Starts a runner; returns it once its worker checkpointed a step > 0."""
  runner = subprocess.Popen(
      [os.path.join(os.path.dirname(sys.executable), "sbd_study"), "run",
       "study.toml", "--output", "out", "--no-report"] + list(flags),
      cwd=str(root),
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2"),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  run_dir = root / "out" / "runs" / RUNS[0]
  _wait_until(lambda: _checkpoint_step(run_dir) > 0 or
              runner.poll() is not None, 300, "a checkpoint after step 0")
  assert runner.poll() is None, runner.stdout.read()[-3000:]
  return runner, run_dir


@pytest.mark.parametrize("executor,sig", [
    ("local", signal.SIGTERM), ("local", signal.SIGINT),
    # submitit's jobs run under a controller process of their own.
    ("submitit-local", signal.SIGTERM), ("submitit-local", signal.SIGKILL)])
def test_stopping_the_runner_stops_its_workers(tmp_path, executor, sig):
  root = _setup(tmp_path, _study(
      steps=100000, seeds="[0]", extra="checkpoint_every_steps = 10"))
  runner, run_dir = _start_training(root, "--executor", executor)
  worker = _worker_pid(run_dir)
  if (executor, sig) == ("local", signal.SIGTERM):
    # A second runner on the same folder is refused while the first works.
    second = _cli(["run", "study.toml", "--output", "out"], root)
    assert second.returncode == 2
    assert "is in use by another runner: sbd_study run (pid %d" % (
        runner.pid) in second.stderr
  runner.send_signal(sig)
  _wait_until(lambda: not _alive(worker), 15, "the worker to stop")
  runner.wait(15)
  if sig == signal.SIGKILL:  # Nothing in the runner ran: its jobs notice.
    assert runner.returncode == -sig
    _wait_until(lambda: not _processes_using(root / "out"), 15,
                "every process of the study to end")
  else:
    assert runner.returncode == 128 + sig
    assert not _processes_using(root / "out")


def test_killed_runner_leaves_no_worker_and_training_resumes(tmp_path):
  steps = 600
  root = _setup(tmp_path, _study(
      steps=steps, seeds="[0]", extra="checkpoint_every_steps = 25"))
  runner, run_dir = _start_training(root)
  worker = _worker_pid(run_dir)
  runner.kill()  # At once: a slower kill could come after the last step.
  runner.wait(10)
  _wait_until(lambda: not _alive(worker), 10, "the orphaned worker to die")
  assert not _processes_using(root / "out")
  checkpointed = _checkpoint_step(run_dir)
  assert 0 < checkpointed < steps
  proc = _cli(["run", "study.toml", "--output", "out"], root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(run_dir / "model" / "results" / "json" /
            "train_results.json") as f:
    results = json.load(f)
  assert results["resumed_from_step"] >= checkpointed
  assert results["global_step"] == steps
