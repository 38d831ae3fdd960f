"""sbd_score gives the numbers dlib_evaluate gives for the same function.

One fixed convolutional encoder (tests/onnx_models.py) is written once as an
ONNX graph taking NCHW images (as PyTorch exports) and once as the TF-Hub
module dlib reads; the real `dlib_evaluate` and `sbd_score` commands score
it with the same tiny metric configs and `evaluation.random_seed`. The
representations of the two runtimes differ by float32 rounding only; the
metric values must be equal.
"""
import json
import os

import numpy as np
import pandas as pd
import pytest

import onnx_models
from helpers import run_tool
from helpers import TINY_METRICS

METRICS = ("mig", "factor_vae", "dci")
# Keys dlib adds that are not scores.
NOT_SCORES = ("elapsed_time", "uuid")


def _results(step_dir):
  with open(os.path.join(step_dir, "results", "json",
                         "evaluation_results.json")) as f:
    results = json.load(f)
  return {k: v for k, v in results.items() if k not in NOT_SCORES}


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
  """The encoder as ONNX (NCHW input) and as a dlib TF-Hub module folder."""
  import sbd_plugin  # pylint: disable=unused-import,g-import-not-at-top
  folder = tmp_path_factory.mktemp("encoder")
  params = onnx_models.conv_params(seed=0)
  onnx_path = onnx_models.save(onnx_models.onnx_encoder(params, "nchw"),
                               str(folder / "encoder.onnx"))
  hub_dir = str(folder / "hub_model")
  onnx_models.write_hub_module(params, hub_dir)
  return {"onnx": onnx_path, "hub": hub_dir, "folder": folder}


@pytest.fixture(scope="module")
def both_paths(encoder):
  """Each metric scored by dlib_evaluate (TF-Hub) and by sbd_score (ONNX)."""
  folder = encoder["folder"]
  for metric in METRICS:
    run_tool(["dlib_evaluate", "--input_dir=" + encoder["hub"],
              "--output_dir=%s" % (folder / "tf" / metric),
              "--gin_config", os.path.join(TINY_METRICS, metric + ".gin"),
              "--gin_bindings", "dataset.name = 'colored_sprites'",
              "--gin_bindings", "evaluation.name = '%s'" % metric])
  proc = run_tool(["sbd_score", "--model", encoder["onnx"],
                   "--dataset", "colored_sprites", "--metrics",
                   ",".join(METRICS), "--output", str(folder / "onnx"),
                   "--input-layout", "nchw", "--seed", "0",
                   "--metric-config-dir", TINY_METRICS])
  return {"tf": str(folder / "tf"), "onnx": str(folder / "onnx"),
          "stdout": proc.stdout}


def test_representations_differ_by_float32_rounding_only(encoder):
  # pylint: disable=g-import-not-at-top
  import tensorflow_hub as hub
  from sbd_plugin.scoring import api
  from sbd_plugin.scoring import onnx_model
  # pylint: enable=g-import-not-at-top
  data = api.load_dataset("colored_sprites")
  images = data.sample_observations(256, np.random.RandomState(1))
  model = onnx_model.OnnxModel(encoder["onnx"], [64, 64, 3], "nchw")
  ours = model(images)
  with hub.eval_function_for_module(os.path.join(encoder["hub"],
                                                 "tfhub")) as f:
    theirs = np.array(f(dict(images=images), signature="representation",
                        as_dict=True)["default"])
  assert ours.shape == theirs.shape == (256, 10)
  assert ours.dtype == theirs.dtype == np.float32
  # Sums of 48 to 128 float32 products in another order: a few ulps.
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_metric_values_equal_dlib_evaluate(both_paths, metric):
  tf_scores = _results(os.path.join(both_paths["tf"], metric))
  onnx_scores = _results(os.path.join(both_paths["onnx"], metric))
  assert tf_scores.keys() == onnx_scores.keys()
  for key, value in tf_scores.items():
    assert onnx_scores[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_same_gin_config_as_dlib_evaluate(both_paths):
  for metric in METRICS:
    texts = []
    for path in ("tf", "onnx"):
      with open(os.path.join(both_paths[path], metric, "results", "gin",
                             "evaluation.gin")) as f:
        texts.append(f.read())
    assert texts[0] == texts[1], metric


def test_dlib_aggregate_results_reads_the_folder(both_paths, tmp_path):
  output = str(tmp_path / "results.json")
  run_tool(["dlib_aggregate_results", "--result_file_pattern=%s" %
            os.path.join(both_paths["onnx"], "*", "results", "aggregate",
                         "evaluation.json"), "--output_path=" + output])
  frame = pd.read_json(output, orient="columns")
  assert len(frame) == 3
  mig = frame.dropna(subset=["evaluation_results.discrete_mig"])
  assert mig["evaluation_results.discrete_mig"].iloc[0] == pytest.approx(
      _results(os.path.join(both_paths["onnx"], "mig"))["discrete_mig"])
  # Every result carries the model's record.
  assert set(frame["external_config.name"]) == {"encoder.onnx"}
  assert set(frame["external_config.input_layout"]) == {"nchw"}
  assert frame["external_config.sha256"].str.len().eq(64).all()


def test_rerun_keeps_finished_metrics(both_paths, encoder):
  before = {m: _results(os.path.join(both_paths["onnx"], m)) for m in METRICS}
  with open(os.path.join(both_paths["onnx"], "mig", "results", "json",
                         "evaluation_results.json")) as f:
    uuid = json.load(f)["uuid"]
  proc = run_tool(["sbd_score", "--model", encoder["onnx"],
                   "--dataset", "colored_sprites", "--metrics",
                   ",".join(METRICS), "--output", both_paths["onnx"],
                   "--input-layout", "nchw",
                   "--metric-config-dir", TINY_METRICS])
  assert proc.stdout.count("finished before, kept") == 3
  with open(os.path.join(both_paths["onnx"], "mig", "results", "json",
                         "evaluation_results.json")) as f:
    assert json.load(f)["uuid"] == uuid
  assert {m: _results(os.path.join(both_paths["onnx"], m))
          for m in METRICS} == before


def test_other_seed_into_the_same_folder_is_refused(both_paths, encoder):
  proc = run_tool(["sbd_score", "--model", encoder["onnx"],
                   "--dataset", "colored_sprites", "--metrics", "mig",
                   "--output", both_paths["onnx"], "--input-layout", "nchw",
                   "--seed", "1", "--metric-config-dir", TINY_METRICS],
                  check=False)
  assert proc.returncode == 2
  assert "holds the scores of another model or setting (seed differ" in (
      proc.stderr)


def test_python_api_gives_the_same_numbers(both_paths, encoder, tmp_path):
  """sbd_plugin.score with a plain function (what a PyTorch user passes)."""
  # pylint: disable=g-import-not-at-top
  import sbd_plugin
  from sbd_plugin.scoring import onnx_model
  # pylint: enable=g-import-not-at-top
  model = onnx_model.OnnxModel(encoder["onnx"], [64, 64, 3], "nchw")
  calls = []

  def representation_fn(images):  # NHWC float32 in, [batch, dims] out.
    calls.append(len(images))
    return model(images)

  scores = sbd_plugin.score(representation_fn, dataset="colored_sprites",
                            metrics=["mig"], seed=0,
                            config_dir=TINY_METRICS,
                            output_dir=str(tmp_path / "api"), batch_size=32)
  assert set(scores) == {"mig"}
  assert scores["mig"]["discrete_mig"] == _results(
      os.path.join(both_paths["onnx"], "mig"))["discrete_mig"]
  assert max(calls) <= 32
  assert os.path.exists(tmp_path / "api" / "mig" / "results" / "aggregate" /
                        "evaluation.json")
  # Another seed changes the metric's draws.
  other = sbd_plugin.score(representation_fn, dataset="colored_sprites",
                           metrics=["mig"], seed=1, config_dir=TINY_METRICS)
  assert other["mig"]["discrete_mig"] != scores["mig"]["discrete_mig"]
