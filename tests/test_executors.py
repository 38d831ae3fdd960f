"""Executors and the pipelined runner: local, submitit-local, SLURM (faked).

The scheduling rules are checked with a fake executor; real studies run on
the local executor (a run's metrics overlap the next training) and through
submitit's LocalExecutor (one job array per phase, requeued on pre-emption);
the SLURM executor writes its sbatch files against stand-in `sbatch`,
`srun` and `scancel` commands.
"""
import json
import os
import signal
import sys
import textwrap
import time

import pandas as pd
import pytest

from evaluation import executors
from evaluation import runner
from evaluation import study as study_lib
from evaluation.executors import base
from evaluation.executors import slurm
from tests import helpers

# DCI's gradient-boosted fits (most of a tiny run's CPU) check nothing about
# an executor; every metric through every stage is test_faults' and
# test_all_metrics' subject.
METRICS = ("mig", "factor_vae")
RUN = "colored_sprites-vae-deconv-seed0"


def _setup(tmp_path, steps=4, train_extra="", extra=""):
  """A one-run study folder outside the repository."""
  (tmp_path / "study.toml").write_text(helpers.study_toml(
      name="executors", steps=steps, train_extra=train_extra, extra=extra,
      metrics=METRICS))
  return tmp_path


def _cli(args, root):
  return helpers.sbd_study(args, cwd=root)


class FakeExecutor(base.Executor):
  """Ends tasks when told to; records what was submitted."""

  def __init__(self, queues=False):
    super(FakeExecutor, self).__init__(base.Settings(output_dir="/nowhere"))
    self.queues = queues
    self.submitted = []  # batches
    self.outcomes = []  # (task, error) to report at the next wait

  def submit(self, tasks):
    self.submitted.append([(t.run_id, t.phase) for t in tasks])

  def wait(self, timeout):
    ended, self.outcomes = self.outcomes, []
    return ended


def _tasks(run_id, phases=base.PHASES):
  return [base.Task(run_id, phase, ("true",), "/dev/null") for phase in phases]


def test_pipeline_evaluates_after_training_beside_the_next_training():
  fake = FakeExecutor()
  pipeline = runner.Pipeline(fake, runner.task_limits(fake, None), retries=1)
  a, b = _tasks("a"), _tasks("b")
  pipeline.add(a)
  pipeline.add(b)
  pipeline.start_ready()
  assert fake.submitted == [[("a", "train")]]  # One training at a time.
  fake.outcomes = [(a[0], None)]
  assert pipeline.collect(0) == []
  pipeline.start_ready()
  assert fake.submitted[-1] == [("b", "train"), ("a", "evaluate")]
  fake.outcomes = [(a[1], None), (b[0], "worker exited with status 1")]
  assert pipeline.collect(0) == [("a", None)]
  pipeline.start_ready()
  assert fake.submitted[-1] == [("b", "train")]  # The retry.
  fake.outcomes = [(b[0], "worker exited with status 1")]
  assert pipeline.collect(0) == [("b", "worker exited with status 1")]
  assert not pipeline.busy() and pipeline.retried == 1


def test_pipeline_submits_everything_to_a_cluster_that_queues():
  fake = FakeExecutor(queues=True)
  pipeline = runner.Pipeline(fake, runner.task_limits(fake, None), retries=0)
  for run_id in "abc":
    pipeline.add(_tasks(run_id))
  pipeline.add(_tasks("d", ["evaluate"]))  # Trained in an earlier execution.
  pipeline.start_ready()
  assert fake.submitted == [[("a", "train"), ("b", "train"), ("c", "train"),
                             ("d", "evaluate")]]


def test_unknown_executor_lists_the_valid_names():
  with pytest.raises(study_lib.StudyError,
                     match="Unknown executor 'kubernetes': use one of local, "
                     "ray, slurm, submitit-local"):
    executors.create("kubernetes", base.Settings(output_dir="/nowhere"))


def test_study_resources_reach_the_executors_and_flags_win(tmp_path):
  root = _setup(tmp_path, extra="""
      [resources]
      partition = "gpu-long"
      time_minutes = 120
      gpus_per_run = 0.5
      retries = 3
      """)
  study = study_lib.parse_study(str(root / "study.toml"))
  chosen = runner.settings(study, "/out", {"retries": 0, "partition": None})
  assert chosen == base.Settings(output_dir="/out", partition="gpu-long",
                                 time_minutes=120, gpus_per_run=0.5,
                                 retries=0)


@pytest.mark.parametrize("gpus,size,job_gpus", [
    (0.25, 4, 1), (0.3, 3, 1), (0.5, 2, 1), (1, 1, 1), (2, 1, 2), (0, 1, 0)])
def test_trainings_that_share_a_gpu_share_a_slurm_job(gpus, size, job_gpus):
  assert slurm.pack_size("train", gpus) == size
  assert slurm.job_gpus("train", gpus) == job_gpus
  assert slurm.pack_size("evaluate", gpus) == 1
  assert slurm.job_gpus("evaluate", gpus) == 0


def test_slurm_jobs_are_arrays_with_the_requested_resources(tmp_path,
                                                            monkeypatch):
  record = helpers.fake_slurm(tmp_path, monkeypatch)
  out = tmp_path / "out"
  executor = executors.create("slurm", base.Settings(
      output_dir=str(out), gpus_per_run=0.5, cpus_per_run=3,
      partition="gpu", time_minutes=90))
  executor.submit(_tasks("a", ["train"]) + _tasks("b", ["train"]) +
                  _tasks("c", ["train"]) + _tasks("d", ["evaluate"]))
  train, evaluate = [(record / ("sbatch_%d.sh" % i)).read_text()
                     for i in range(2)]
  # Three trainings sharing GPUs by two: one array of two jobs.
  for line in ("--array=0-1%2", "--gpus-per-node=1", "--cpus-per-task=6",
               "--partition=gpu", "--time=90", "--job-name=sbd-out-train",
               "--signal=USR2@90", "--output=%s/%%A_%%a_0_log.out" % (
                   out / "slurm")):
    assert "#SBATCH " + line in train, line
  assert "--cpus-per-task=3" in evaluate and "gpus" not in evaluate
  assert "--array" not in evaluate  # A single job.
  executor.stop()
  assert sorted((record / "scancel.txt").read_text().split()) == [
      "4242", "4242_0", "4242_1"]


def test_a_refused_slurm_submission_says_why(tmp_path, monkeypatch):
  helpers.fake_slurm(tmp_path, monkeypatch, sbatch=(
      'echo "sbatch: error: invalid partition specified: nope" >&2; exit 1'))
  executor = executors.create("slurm", base.Settings(
      output_dir=str(tmp_path / "out"), partition="nope"))
  with pytest.raises(study_lib.StudyError, match="Submitting 1 job.s. "
                     "failed: sbatch: error: invalid partition specified"):
    executor.submit(_tasks("a", ["train"]))


def _assert_results(out, run_ids):
  frame = pd.read_csv(out / "results" / "results.csv")
  assert sorted(frame["run_id"].unique()) == run_ids
  assert not frame.duplicated(["run_id", "metric"]).any()
  for run_id in run_ids:
    assert set(METRICS) <= set(frame["metric"][frame["run_id"] == run_id])
    with open(out / "runs" / run_id / "DONE.json") as f:
      done = json.load(f)
    assert list(done["timings"]) == ["train", "postprocess"] + list(METRICS)
    with open(out / "runs" / run_id / "model" / "progress.json") as f:
      progress = json.load(f)
    assert progress["step"] == progress["total"] == 4


def test_submitit_local_runs_a_study_end_to_end(tmp_path):
  root = _setup(tmp_path)
  proc = _cli(["run", "study.toml", "--output", "out", "--executor",
               "submitit-local", "--jobs", "2"], root)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1 runs: 1 finished now" in proc.stdout
  out = root / "out"
  _assert_results(out, [RUN])
  logs = [n for n in os.listdir(out / "slurm") if n.endswith("_log.out")]
  assert len(logs) == 2  # The training, then the evaluation.
  assert not helpers.processes_using(out)


def _submitit_task_pid(out):
  """Pid of the submitit process that runs a job (not its controller)."""
  pids = [pid for pid in helpers.processes_using(out)
          if b"submitit.core._submit" in open("/proc/%d/cmdline" % pid,
                                              "rb").read()]
  assert len(pids) == 1, pids
  return pids[0]


def test_a_preempted_submitit_job_is_requeued_and_resumes(tmp_path):
  steps = 1000
  root = _setup(tmp_path, steps=steps,
                train_extra="checkpoint_every_steps = 25")
  runner_proc, run_dir = helpers.start_training(root, RUN, "--executor",
                                                "submitit-local")
  os.kill(_submitit_task_pid(root / "out"), signal.SIGUSR2)  # Pre-emption.
  runner_proc.wait(900)
  assert runner_proc.returncode == 0, runner_proc.stdout.read()[-3000:]
  with open(os.path.join(run_dir, "model", "results", "json",
                         "train_results.json")) as f:
    results = json.load(f)
  assert 0 < results["resumed_from_step"] < steps
  assert results["global_step"] == steps
  assert helpers.checkpoint_step(run_dir) == steps
  logs = "".join(open(root / "out" / "slurm" / n).read()
                 for n in os.listdir(root / "out" / "slurm")
                 if n.endswith("_log.out"))
  assert "this job is preempted" in logs and "Requeued job" in logs
  helpers.wait_until(lambda: not helpers.processes_using(root / "out"), 15,
                     "every process of the study to end")


def test_summary_says_where_each_runs_time_went():
  outcomes = [
      runner.Outcome("a", "finished", timings={"train": 3725, "mig": 65}),
      runner.Outcome("b", "skipped", timings={"train": 5, "mig": 1.4}),
      runner.Outcome("c", "failed", "ValueError: x")]
  text = runner.summarize(outcomes)
  assert "| run | train | mig | total |" in text
  assert "| a | 1h02m | 1m05s | 1h03m |" in text
  assert "| b | 5s | 1s | 6s |" in text
  assert "| all runs | 1h02m | 1m06s | 1h03m |" in text


def test_progress_shows_step_rate_and_eta_of_running_trainings(tmp_path):
  study = study_lib.Study(name="s", description="", runs=[], figures={},
                          source="")
  task = _tasks("a", ["train"])[0]
  model_dir = tmp_path / "runs" / "a" / "model"
  model_dir.mkdir(parents=True)
  fake = FakeExecutor()
  pipeline = runner.Pipeline(fake, runner.task_limits(fake, None), retries=0)
  pipeline.add([task])
  pipeline.start_ready()
  view = runner._Progress(study, str(tmp_path), 0, enabled=True)  # pylint: disable=protected-access
  view.update(pipeline)
  assert not view._training  # pylint: disable=protected-access
  # A progress file that cannot be read (a directory here; NFS's ESTALE)
  # shows no bar and stops nothing.
  (model_dir / "progress.json").mkdir()
  view.update(pipeline)
  assert not view._training  # pylint: disable=protected-access
  (model_dir / "progress.json").rmdir()
  (model_dir / "progress.json").write_text(json.dumps(
      {"step": 250, "total": 1000, "steps_per_second": 5.0,
       "time": time.time()}))
  view.update(pipeline)
  bar = view._training["a"]  # pylint: disable=protected-access
  assert (bar.n, bar.total) == (250, 1000)
  assert bar.postfix == "5.0 steps/s, ETA 2m30s"
  view.close()


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"),
                    reason="this kernel has no autogroups")
def test_a_niced_runner_starts_its_workers_niced_in_their_own_sessions():
  # With autogroups, a worker's new session would otherwise get full weight
  # beside the user's other work, whatever `nice sbd_study run` asked for.
  code = textwrap.dedent("""
      import os
      from evaluation import processes
      os.nice(7)
      children = processes.Children()
      with open(os.devnull, "w") as log:
        proc = children.start(["sleep", "30"], log, dict(os.environ))
      with open("/proc/%d/autogroup" % proc.pid) as f:
        print(f.read().strip())
      print(os.getsid(proc.pid) == proc.pid, os.getpriority(
          os.PRIO_PROCESS, proc.pid))
      children.terminate_all()
      """)
  out = helpers.run_tool([sys.executable, "-c", code]).stdout.splitlines()
  assert out[-2].endswith(" nice 7"), out
  assert out[-1] == "True 7", out
