"""Helpers shared by the test modules (no test module imports another).

`run_tool` runs a tool of the project's environment as a user would;
`study_toml` writes the tiny study every runner test starts from.
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import time

from evaluation import metrics as metrics_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
# dlib_evaluate's end-to-end test globs tiny_metrics/*.gin: the other seven
# metrics' small configs live beside it in tiny_metrics_extra.
TINY_METRICS = os.path.join(REPO, "tests", "data", "tiny_metrics")
TINY_METRICS_EXTRA = os.path.join(REPO, "tests", "data", "tiny_metrics_extra")


def run_tool(args, cwd=None, env=None, timeout=900, check=True):
  """Runs a command-line tool of the project's environment as a user would.

  Args:
    args: List, the tool name (a script in the venv's bin/) and its flags.
    cwd: Working directory.
    env: Extra environment variables.
    timeout: Seconds before the tool is killed.
    check: Raise with the tool's output if it exits non-zero.

  Returns:
    subprocess.CompletedProcess with text stdout and stderr.
  """
  full_env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
  full_env.update(env or {})
  exe = os.path.join(BIN, args[0])
  cmd = [exe] + list(args[1:]) if os.path.exists(exe) else list(args)
  proc = subprocess.run(cmd, cwd=cwd or REPO, env=full_env, timeout=timeout,
                        capture_output=True, text=True)
  if check and proc.returncode != 0:
    raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr (tail)\n%s"
                         % (" ".join(args), proc.returncode, proc.stdout[-3000:],
                            proc.stderr[-6000:]))
  return proc


def tiny_metric_config(metric):
  """Path of a metric's tiny test config (few samples, seconds to run)."""
  return os.path.join(REPO, metrics_lib.METRICS[metric].tiny_config)


def study_toml(name="tiny", datasets=("colored_sprites",), models=("vae",),
               decoders=("deconv",), seeds=(0,), steps=4, train_extra="",
               traversals=False, metrics=("mig", "factor_vae", "dci"),
               metric_dir=None, extra=""):
  """The text of a tiny study file: a few training steps, tiny metrics.

  Args:
    name: Study name.
    datasets, models, decoders, seeds: Sequences of the study's axes.
    steps: model.training_steps of each run.
    train_extra: Extra lines of the [train] table (e.g. checkpointing).
    traversals: Whether the report draws traversals (loads each model).
    metrics: Study metric names; each gets its tiny test config.
    metric_dir: Folder the configs are named in (e.g. a path relative to
      the study file); default the tiny configs' own absolute paths.
    extra: Extra TOML appended at the end (its own tables).

  Returns:
    The study file's text.
  """
  def strings(values):
    return "[%s]" % ", ".join('"%s"' % v for v in values)
  return textwrap.dedent("""\
      name = "{name}"
      datasets = {datasets}
      models = {models}
      decoders = {decoders}
      seeds = [{seeds}]
      [train]
      bindings = ["model.training_steps = {steps}", "model.eval_steps = 1",
                  "model.batch_size = 8"]
      {train_extra}
      [figures]
      traversals = {traversals}
      [metrics]
      names = {names}
      [metrics.configs]
      """).format(
          name=name, datasets=strings(datasets), models=strings(models),
          decoders=strings(decoders),
          seeds=", ".join(str(s) for s in seeds), steps=steps,
          train_extra=train_extra,
          traversals="true" if traversals else "false",
          names=strings(metrics)) + "".join(
              '%s = "%s"\n' % (m, os.path.join(metric_dir, m + ".gin")
                                if metric_dir else tiny_metric_config(m))
              for m in metrics
          ) + textwrap.dedent(extra)


# --- Studies run as a user runs them, and the processes they start ---------


def sbd_study(args, cwd=None, env=None, check=False, timeout=900):
  """Runs `sbd_study ARGS` (the installed command); returns the process."""
  return run_tool(["sbd_study"] + list(args), cwd=str(cwd) if cwd else None,
                  env=env, check=check, timeout=timeout)


def processes_using(path):
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


def alive(pid):
  """Whether process `pid` runs (a zombie does not)."""
  try:
    with open("/proc/%d/stat" % pid) as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"
  except OSError:
    return False


def wait_until(predicate, timeout, what):
  """Polls `predicate` until true; fails naming `what` after `timeout` s."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(0.2)
  raise AssertionError("timed out after %d s waiting for %s" % (timeout, what))


def dead_pid():
  """The pid of a process that has ended (until the kernel reuses it)."""
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def worker_pid(run_dir):
  """Pid of the worker holding a run folder's lock."""
  with open(os.path.join(run_dir, ".lock")) as f:
    return json.load(f)["pid"]  # The holder's record (processes.FolderLock).


def checkpoint_step(run_dir):
  """Step of the newest checkpoint of a run's model (-1 if none)."""
  try:
    with open(os.path.join(run_dir, "model", "tf_checkpoint",
                           "checkpoint")) as f:
      text = f.read()
  except OSError:
    return -1
  found = re.search(r'model_checkpoint_path: "model.ckpt-(\d+)"', text)
  return int(found.group(1)) if found else -1


def start_training(root, run_id, *flags):
  """Starts `sbd_study run study.toml` in `root` in the background.

  Args:
    root: Folder holding study.toml; the output goes to root/out.
    run_id: The run whose first checkpoint is waited for.
    *flags: Extra flags of `sbd_study run`.

  Returns:
    (runner Popen, run folder), once the run checkpointed a step > 0.
  """
  runner = subprocess.Popen(
      [os.path.join(BIN, "sbd_study"), "run", "study.toml", "--output", "out",
       "--no-report"] + list(flags),
      cwd=str(root),
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2"),
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  run_dir = os.path.join(str(root), "out", "runs", run_id)
  wait_until(lambda: checkpoint_step(run_dir) > 0 or
             runner.poll() is not None, 300, "a checkpoint after step 0")
  assert runner.poll() is None, runner.stdout.read()[-3000:]
  return runner, run_dir


# --- The tiny study and models the session fixtures make once ------------

# Its good runs; the small_colored_sprites runs fail by design in their
# worker: the binding passes the pre-launch check (a known parameter) but the
# value is refused when the dataset is built, an error a retry cannot change.
TINY_STUDY_RUNS = ["colored_sprites-vae-broadcast-seed0",
                   "colored_sprites-vae-deconv-seed0"]
TINY_STUDY_FAILING = ["small_colored_sprites-vae-broadcast-seed0",
                      "small_colored_sprites-vae-deconv-seed0"]
_FAILING = """
    [dataset_bindings]
    small_colored_sprites = ["small_colored_sprites.scale_factor = 2.0"]
    """


def tiny_study_text(datasets=("colored_sprites", "small_colored_sprites")):
  """The tiny study's file: 2 decoders x `datasets`, 4 steps, seed 0."""
  return study_toml(name="tiny", datasets=datasets,
                    decoders=("broadcast", "deconv"), traversals=True,
                    extra=_FAILING if "small_colored_sprites" in datasets
                    else "")


def copy_study(study, destination):
  """A copy of a finished study folder that a test may change."""
  shutil.copytree(study.out, destination, symlinks=True)
  return destination


DLIB_TINY_TRAIN = ["model.training_steps = 6", "model.eval_steps = 2",
                   "model.batch_size = 8", "dataset.name = 'colored_sprites'"]


def gin_bindings(bindings):
  """dlib's command-line flags for a list of gin bindings."""
  return [a for b in bindings for a in ("--gin_bindings", b)]


def fake_slurm(tmp_path, monkeypatch, sbatch=None):
  """sbatch, srun and scancel stand-ins that record what they were given.

  Args:
    tmp_path: A test's folder (gets bin/ and record/).
    monkeypatch: pytest's, to put bin/ first on PATH.
    sbatch: Optional body of the sbatch script (default: keep each file as
      record/sbatch_<i>.sh and answer "Submitted batch job 4242").

  Returns:
    The record folder.
  """
  bin_dir, record = tmp_path / "bin", tmp_path / "record"
  bin_dir.mkdir()
  record.mkdir()
  scripts = {
      "sbatch": sbatch or 'cp "$1" "%s/sbatch_$(ls %s | wc -l).sh"\n'
                'echo "Submitted batch job 4242"' % (record, record),
      "scancel": 'echo "$@" >> "%s/scancel.txt"' % record,
      "srun": "exit 1",
  }
  for name, body in scripts.items():
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
  monkeypatch.setenv("PATH", "%s%s%s" % (bin_dir, os.pathsep,
                                         os.environ["PATH"]))
  return record


def checkpoint_variables(model_dir):
  """Every variable of the newest checkpoint of a dlib model folder."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  reader = tf.train.load_checkpoint(
      tf.train.latest_checkpoint(os.path.join(model_dir, "tf_checkpoint")))
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()}


def train_results(model_dir, differ=("uuid", "elapsed_time")):
  """dlib's train_results.json of a model folder, less keys that differ."""
  with open(os.path.join(model_dir, "results", "json",
                         "train_results.json")) as f:
    results = json.load(f)
  for key in differ:
    results.pop(key, None)
  return results


def assert_second_runner_refused(folder, lock):
  """While `lock` (a held processes.FolderLock of `folder`) is held, a
  runner is refused with a message naming the folder's holder; then frees
  it."""
  # pylint: disable=g-import-not-at-top
  import pytest
  from evaluation import runner
  from evaluation import study as study_lib
  # pylint: enable=g-import-not-at-top
  try:
    with pytest.raises(study_lib.StudyError, match="in use by another runner"):
      runner.lock_output_dir(str(folder))
  finally:
    lock.release()
