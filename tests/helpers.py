"""Helpers shared by the test modules (no test module imports another).

`run_tool` runs a tool of the project's environment as a user would;
`study_toml` writes the tiny study every runner test starts from.
"""
import os
import subprocess
import sys
import textwrap

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
               extra=""):
  """The text of a tiny study file: a few training steps, tiny metrics.

  Args:
    name: Study name.
    datasets, models, decoders, seeds: Sequences of the study's axes.
    steps: model.training_steps of each run.
    train_extra: Extra lines of the [train] table (e.g. checkpointing).
    traversals: Whether the report draws traversals (loads each model).
    metrics: Study metric names; each gets its tiny test config.
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
              '%s = "%s"\n' % (m, tiny_metric_config(m)) for m in metrics
          ) + textwrap.dedent(extra)
