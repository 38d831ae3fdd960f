"""dlib's own command-line tools, unmodified, on the plugin's configs.

Runs the real `dlib_train`, `dlib_postprocess`, `dlib_evaluate`,
`dlib_aggregate_results` and `dlib_visualize_model` executables as
subprocesses, for a Spatial Broadcast and a stock deconv FactorVAE, on a
plugin dataset and a tiny budget.
"""
import glob
import io
import json
import os

import pandas as pd
import pytest

from evaluation import aggregate
from tests import helpers
from tests.helpers import run_tool

DATASET = "colored_sprites"  # helpers.DLIB_TINY_TRAIN's.
EXPECTED_KEYS = {"mig": "discrete_mig", "factor_vae": "eval_accuracy",
                 "dci": "disentanglement"}
CONFIGS = ["broadcast_factorvae", "deconv_factorvae"]


@pytest.fixture(params=CONFIGS)
def evaluated_model(request, dlib_model):
  """(config, model folder) trained, postprocessed and evaluated by dlib's
  commands once per session (conftest's `dlib_model`)."""
  return request.param, dlib_model(request.param)


def _load(path):
  with open(path) as f:
    return json.load(f)


def test_metrics_land_in_dlibs_result_json(evaluated_model):
  _, model_dir = evaluated_model
  for metric, key in EXPECTED_KEYS.items():
    result = _load(os.path.join(model_dir, "metrics", metric, "results",
                                "aggregate", "evaluation.json"))
    value = result["evaluation_results.%s" % key]
    assert 0.0 <= value <= 1.0, (metric, value)
    # "auto" resolved the plugin dataset from the training config.
    assert result["evaluation_config.dataset.name"] == "'%s'" % DATASET
    assert result["train_config.decoder.decoder_fn"] in (
        "@spatial_broadcast_decoder", "@deconv_decoder")


def test_training_recorded_the_decoder_and_input_pipeline(evaluated_model):
  config, model_dir = evaluated_model
  with open(os.path.join(model_dir, "results", "gin", "train.gin")) as f:
    train_gin = f.read()
  decoder = ("@spatial_broadcast_decoder" if config.startswith("broadcast")
             else "@deconv_decoder")
  assert "decoder.decoder_fn = %s" % decoder in train_gin
  assert "input_pipeline.batched = True" in train_gin
  assert "dataset.name = '%s'" % DATASET in train_gin


def test_existing_output_folder_is_refused_without_overwrite(evaluated_model):
  _, model_dir = evaluated_model
  proc = run_tool(["dlib_train", "--model_dir=" + model_dir, "--gin_config",
                   "gin_configs/broadcast_vae.gin"] +
                  helpers.gin_bindings(helpers.DLIB_TINY_TRAIN),
                  check=False)
  assert proc.returncode != 0
  assert "already exists" in proc.stderr
  assert os.path.exists(os.path.join(model_dir, "metrics", "mig"))  # kept


def test_aggregate_results_collects_every_metric(evaluated_model, tmp_path):
  _, model_dir = evaluated_model
  out = str(tmp_path / "results.json")
  run_tool(["dlib_aggregate_results", "--result_file_pattern=" +
            os.path.join(model_dir, "metrics", "*", "results", "aggregate",
                         "evaluation.json"), "--output_path=" + out])
  frame = pd.read_json(out, orient="columns")
  assert len(frame) == 3
  assert set(frame["evaluation_config.evaluation.evaluation_fn"]) == {
      "@mig", "@factor_vae_score", "@dci"}
  # The study runner's loader (TensorFlow-free) reads the same rows.
  ours = pd.read_json(io.StringIO(pd.DataFrame([
      aggregate._load_like_dlib(p) for p in frame["path"]]).to_json()),  # pylint: disable=protected-access
                      orient="columns")
  pd.testing.assert_frame_equal(ours, frame)


def test_visualize_model_writes_animations(dlib_model, tmp_path):
  # One model suffices: the deconv one decodes 30x faster.
  model_dir = dlib_model("deconv_factorvae")
  vis_dir = str(tmp_path / "visualizations")
  run_tool(["dlib_visualize_model", "--model_dir=" + model_dir,
            "--output_dir=" + vis_dir])
  gifs = glob.glob(os.path.join(vis_dir, "animated_traversals", "*.gif"))
  pngs = glob.glob(os.path.join(vis_dir, "reconstructions", "*.jpg")) + \
      glob.glob(os.path.join(vis_dir, "reconstructions", "*.png"))
  assert gifs and pngs


@pytest.mark.parametrize("name,num_factors", [("colored_sprites", 8),
                                              ("object_in_room", 6)])
def test_visualize_dataset_renders_every_factor(name, num_factors, tmp_path):
  run_tool(["dlib_visualize_dataset", "--name=" + name,
            "--path=" + str(tmp_path)])
  folder = tmp_path / name
  for i in range(num_factors):
    assert (folder / ("variations_of_factor%d.png" % i)).exists()
  assert list(folder.glob("animation*.gif"))
