"""External models (ONNX files, `module:function`) in a study, beside trained decoders."""
import os
import textwrap

import pandas as pd
import pytest

import onnx_models
from evaluation import study as study_lib
from helpers import run_tool
from helpers import study_toml

MODULE = textwrap.dedent('''\
    """A representation function as a PyTorch or JAX user would give it."""
    import numpy as np


    def linear(seed):
      weights = np.random.RandomState(seed).normal(
          scale=0.02, size=(64 * 64 * 3, 5)).astype(np.float32)
      return lambda images: images.reshape(len(images), -1).dot(weights)
    ''')


def _external(files=None, function=None, seeds=None, name="onnx_vae",
              extra=""):
  lines = ["[[external]]", 'name = "%s"' % name]
  if files is not None:
    lines.append("files = [%s]" % ", ".join('"%s"' % f for f in files))
  if function is not None:
    lines.append('function = "%s"' % function)
  if seeds is not None:
    lines.append("seeds = [%s]" % ", ".join(str(s) for s in seeds))
  return "\n".join(lines) + "\n" + extra


def _write_encoders(folder, count=2):
  names = []
  for seed in range(count):
    name = "enc%d.onnx" % seed
    params = onnx_models.linear_params(seed=seed, dims=5)
    onnx_models.save(onnx_models.onnx_encoder(params, "nchw"),
                     os.path.join(folder, name))
    names.append(name)
  return names


def _parse(tmp_path, text):
  path = tmp_path / "study.toml"
  path.write_text(text)
  return study_lib.parse_study(str(path))


def test_plan_lists_external_runs_beside_trained_ones(tmp_path):
  files = _write_encoders(str(tmp_path))
  text = study_toml(seeds=(0, 1), metrics=("mig",), extra=_external(
      files, extra='input_layout = "nchw"\n'))
  study = _parse(tmp_path, text)
  external = [r for r in study.runs if r.external]
  assert [r.decoder for r in external] == ["onnx_vae", "onnx_vae"]
  assert [r.seed for r in external] == [0, 1]
  assert dict(external[0].external) == {
      "kind": "onnx", "source": str(tmp_path / "enc0.onnx"),
      "input_layout": "nchw"}
  assert study.external_names == ("onnx_vae",)
  proc = run_tool(["sbd_study", "plan", str(tmp_path / "study.toml")])
  assert "colored_sprites-vae-onnx_vae-seed1  (external onnx: " in proc.stdout
  assert "4 runs" in proc.stdout


@pytest.mark.parametrize("extra, message", [
    (_external(files=["enc0.onnx"], function="m:f", seeds=[0]),
     "needs exactly one of `files`"),
    (_external(function="not a function", seeds=[0]),
     "must be 'module:function'"),
    (_external(function="m:f"), "list the `seeds`"),
    (_external(files=["enc0.onnx"], seeds=[0, 1]), "one seed per file"),
    (_external(files=["missing.onnx"]), "missing.onnx' not found"),
    (_external(files=["enc0.onnx"], name="deconv"), "already a decoder"),
    (_external(files=["enc0.onnx"], extra='input_layout = "NCHW"\n'),
     'must be "nhwc" or "nchw"'),
    (_external(files=["enc0.onnx"], extra='dataset = "object_in_room"\n'),
     "is not in `datasets`"),
    (_external(files=["enc0.onnx"], extra='flies = ["x"]\n'),
     "did you mean `external[0].files`"),
])
def test_bad_external_tables_name_the_field(tmp_path, extra, message):
  _write_encoders(str(tmp_path), 1)
  with pytest.raises(study_lib.StudyError, match=message.replace(
      "[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
    _parse(tmp_path, study_toml(metrics=("mig",), extra=extra))


def test_external_models_get_rows_tables_and_figure(tmp_path):
  files = _write_encoders(str(tmp_path))
  (tmp_path / "ext_models.py").write_text(MODULE)
  text = study_toml(seeds=(0, 1), metrics=("mig",), extra=_external(
      files, extra='input_layout = "nchw"\n') + "\n" + _external(
          function="ext_models:linear", seeds=[3, 4], name="numpy_fn"))
  (tmp_path / "study.toml").write_text(text)
  out = tmp_path / "out"
  env = {"PYTHONPATH": str(tmp_path)}
  run_tool(["sbd_study", "run", str(tmp_path / "study.toml"), "--output",
            str(out)], env=env, timeout=1500)
  frame = pd.read_csv(out / "results" / "results.csv")
  mig = frame[frame["metric"] == "mig"]
  assert sorted(mig["decoder"].unique()) == ["deconv", "numpy_fn",
                                             "onnx_vae"]
  external = mig[mig["decoder"] != "deconv"].sort_values("run_id")
  assert sorted(external["seed"]) == [0, 1, 3, 4]
  assert external["value"].between(0, 1).all()
  assert external["reconstruction_loss"].isna().all()  # never trained here
  run_dir = out / "runs" / "colored_sprites-vae-onnx_vae-seed0"
  assert (run_dir / "DONE.json").exists()
  assert not (run_dir / "model").exists()
  comparison = (out / "results" / "comparison.md").read_text()
  rows = [line for line in comparison.splitlines()
          if "| onnx_vae |" in line or "| numpy_fn |" in line]
  assert len(rows) == 2
  # Compared with the baseline in the trained runs' beta group.
  for row in rows:
    assert "| vae | 1 | mig |" in row and "no baseline values" not in row
    assert row.split("|")[8].strip() not in ("", "-")  # diff vs deconv
  assert (out / "figures" / "metric_distributions.png").exists()
  # A rerun skips every finished run, external ones included.
  before = (run_dir / "metrics" / "mean" / "mig" / "results" / "aggregate" /
            "evaluation.json").read_text()
  proc = run_tool(["sbd_study", "run", str(tmp_path / "study.toml"),
                   "--output", str(out)], env=env, timeout=900)
  assert (run_dir / "metrics" / "mean" / "mig" / "results" / "aggregate" /
          "evaluation.json").read_text() == before
  assert "6 runs: 0 finished now, 6 finished earlier, 0 failed." in (
      proc.stdout)
