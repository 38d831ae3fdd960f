"""dlib's own command-line tools, unmodified, on the plugin's configs.

Runs the real `dlib_train`, `dlib_postprocess`, `dlib_evaluate`,
`dlib_aggregate_results` and `dlib_visualize_model` executables as
subprocesses, for a Spatial Broadcast and a stock deconv FactorVAE, on a
plugin dataset and a tiny budget.
"""
import glob
import json
import os

import pandas as pd
import pytest

from tests.helpers import run_tool

DATASET = os.environ.get("SBD_E2E_DATASET", "colored_sprites")
TINY_TRAIN = ["model.training_steps = 6", "model.eval_steps = 2",
              "model.batch_size = 8", "dataset.name = '%s'" % DATASET]
# dlib's metric configs with small sample sizes, all run by one dlib_evaluate.
TINY_METRICS = os.path.join(os.path.dirname(__file__), "data", "tiny_metrics")
EXPECTED_KEYS = {"mig": "discrete_mig", "factor_vae": "eval_accuracy",
                 "dci": "disentanglement"}


def _bindings(bindings):
  return [a for b in bindings for a in ("--gin_bindings", b)]


@pytest.fixture(scope="module", params=["broadcast_factorvae",
                                        "deconv_factorvae"])
def evaluated_model(request, tmp_path_factory):
  """Trains, postprocesses and evaluates one config with dlib's commands."""
  root = tmp_path_factory.mktemp("e2e")
  model_dir = str(root / request.param)
  run_tool(["dlib_train", "--model_dir=" + model_dir, "--gin_config",
            "gin_configs/%s.gin" % request.param] + _bindings(TINY_TRAIN))
  mean_dir = os.path.join(model_dir, "postprocessed", "mean")
  run_tool(["dlib_postprocess", "--model_dir=" + model_dir,
            "--output_dir=" + mean_dir, "--gin_config",
            "gin_configs/postprocess/mean.gin"])
  run_tool(["dlib_evaluate", "--input_dir=" + mean_dir,
            "--output_dir=" + os.path.join(model_dir, "metrics"),
            "--gin_evaluation_config_glob=" + os.path.join(TINY_METRICS,
                                                           "*.gin")])
  return str(root), model_dir


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
  _, model_dir = evaluated_model
  with open(os.path.join(model_dir, "results", "gin", "train.gin")) as f:
    train_gin = f.read()
  name = os.path.basename(model_dir)
  decoder = ("@spatial_broadcast_decoder" if name.startswith("broadcast")
             else "@deconv_decoder")
  assert "decoder.decoder_fn = %s" % decoder in train_gin
  assert "input_pipeline.batched = True" in train_gin
  assert "dataset.name = '%s'" % DATASET in train_gin


def test_existing_output_folder_is_refused_without_overwrite(evaluated_model):
  _, model_dir = evaluated_model
  proc = run_tool(["dlib_train", "--model_dir=" + model_dir, "--gin_config",
                   "gin_configs/broadcast_vae.gin"] + _bindings(TINY_TRAIN),
                  check=False)
  assert proc.returncode != 0
  assert "already exists" in proc.stderr
  assert os.path.exists(os.path.join(model_dir, "metrics", "mig"))  # kept


def test_aggregate_results_collects_every_metric(evaluated_model):
  root, model_dir = evaluated_model
  out = os.path.join(root, "results.json")
  run_tool(["dlib_aggregate_results", "--result_file_pattern=" +
            os.path.join(root, "*", "metrics", "*", "results", "aggregate",
                         "evaluation.json"), "--output_path=" + out])
  frame = pd.read_json(out, orient="columns")
  assert len(frame) == 3
  assert set(frame["evaluation_config.evaluation.evaluation_fn"]) == {
      "@mig", "@factor_vae_score", "@dci"}
  del model_dir


def test_visualize_model_writes_animations(evaluated_model):
  _, model_dir = evaluated_model
  if not model_dir.endswith("deconv_factorvae"):
    pytest.skip("one model suffices (the deconv one decodes 30x faster)")
  vis_dir = os.path.join(model_dir, "visualizations")
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
