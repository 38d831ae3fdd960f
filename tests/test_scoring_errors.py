"""sbd_score / sbd_plugin.score refuse a wrong model before any metric starts.

Each broken model is built here with `onnx.helper` (tests/onnx_models.py) and
scored on dlib's dummy_data (64x64x1, built instantly); every error must name
the model, what was expected and what was found, and leave no metric folder
behind.
"""
import os

import numpy as np
import pytest

import onnx_models
from helpers import run_tool
from helpers import TINY_METRICS
from sbd_plugin import scoring
from sbd_plugin.scoring import api

DUMMY_SHAPE = (64, 64, 1)


def _score(path, tmp_path, **kwargs):
  kwargs.setdefault("metrics", ["mig"])
  return api.score_onnx(str(path), "dummy_data",
                        output_dir=str(tmp_path / "out"),
                        config_dir=TINY_METRICS, **kwargs)


def _no_metric_ran(tmp_path):
  out = tmp_path / "out"
  return not out.exists() or sorted(os.listdir(out)) in ([], ["model"])


def _save(model, tmp_path, name="model.onnx"):
  return onnx_models.save(model, str(tmp_path / name))


def test_missing_file_is_named(tmp_path):
  with pytest.raises(scoring.ModelError, match="nothere.onnx does not exist"):
    _score(tmp_path / "nothere.onnx", tmp_path)
  assert _no_metric_ran(tmp_path)


def test_file_that_is_not_onnx_is_refused(tmp_path):
  path = tmp_path / "encoder.onnx"
  path.write_bytes(b"this is a pickle, not a protobuf" * 10)
  with pytest.raises(scoring.ModelError,
                     match="encoder.onnx is not an ONNX model"):
    _score(path, tmp_path)
  assert _no_metric_ran(tmp_path)


def test_channel_mismatch_gives_both_shapes(tmp_path):
  # An RGB encoder on the grey dummy_data.
  path = _save(onnx_models.onnx_encoder(onnx_models.linear_params()), tmp_path)
  with pytest.raises(scoring.ModelError) as error:
    _score(path, tmp_path)
  message = str(error.value)
  assert "model.onnx takes input ['batch', 64, 64, 3]" in message
  assert "give ['batch', 64, 64, 1] in layout nhwc" in message
  assert _no_metric_ran(tmp_path)


def test_layout_mismatch_suggests_the_other_layout(tmp_path):
  params = onnx_models.linear_params(shape=DUMMY_SHAPE)
  path = _save(onnx_models.onnx_encoder(params, layout="nchw"), tmp_path)
  with pytest.raises(scoring.ModelError,
                     match="It matches --input-layout nchw: pass that"):
    _score(path, tmp_path)
  # And with the hint followed it scores.
  scores = _score(path, tmp_path, input_layout="nchw")
  assert 0.0 <= scores["mig"]["discrete_mig"] <= 1.0


def test_image_size_mismatch(tmp_path):
  params = onnx_models.linear_params(shape=(32, 32, 1))
  path = _save(onnx_models.onnx_encoder(params), tmp_path)
  with pytest.raises(scoring.ModelError,
                     match=r"takes input \['batch', 32, 32, 1\]"):
    _score(path, tmp_path)
  assert _no_metric_ran(tmp_path)


@pytest.mark.parametrize("model_fn, error, pattern", [
    (onnx_models.wrong_rank_output, scoring.ModelError,
     r"outputs shape \['batch', 64, 64, 1\]; expected \[batch, dims\]"),
    (onnx_models.integer_output, scoring.ModelError,
     r"outputs tensor\(int64\); expected floats"),
    (onnx_models.zero_dims_output, scoring.ModelError,
     r"outputs \[batch, 0\]: a representation needs at least one"),
    (onnx_models.nan_output, scoring.RepresentationError,
     r"returned NaN or Inf for 64 of 64 images"),
    # ONNX Runtime infers the undeclared shape: refused when loaded.
    (onnx_models.undeclared_output_rank, scoring.ModelError,
     r"outputs shape \[.*64, 64, 1\]; expected \[batch, dims\]"),
])
def test_bad_output_is_refused_before_any_metric(tmp_path, model_fn, error,
                                                 pattern):
  path = _save(model_fn(shape=DUMMY_SHAPE), tmp_path)
  with pytest.raises(error, match=pattern) as raised:
    _score(path, tmp_path)
  assert "model.onnx" in str(raised.value)
  assert _no_metric_ran(tmp_path)


def test_python_function_is_checked_the_same_way(tmp_path):
  def returns_images(images):
    return images

  with pytest.raises(scoring.RepresentationError,
                     match=r"Model torch_encoder returned shape \[64, 64, 64, "
                     r"1\]"):
    scoring.score(returns_images, dataset="dummy_data", metrics=["mig"],
                  name="torch_encoder", config_dir=TINY_METRICS)


def test_unknown_metric_and_bad_binding_are_named(tmp_path):
  params = onnx_models.linear_params(shape=DUMMY_SHAPE, dims=3)
  path = _save(onnx_models.onnx_encoder(params), tmp_path)
  with pytest.raises(scoring.ScoringError,
                     match=r"Unknown metric 'migg'.*dci, factor_vae, mig"):
    _score(path, tmp_path, metrics=["mig", "migg"])
  with pytest.raises(scoring.ScoringError,
                     match=r"metric mig .* does not parse.*num_trian"):
    _score(path, tmp_path, metric_bindings=["mig.num_trian = 10"])
  assert _no_metric_ran(tmp_path)


def test_unknown_dataset_lists_the_valid_names(tmp_path):
  params = onnx_models.linear_params(shape=DUMMY_SHAPE, dims=3)
  path = _save(onnx_models.onnx_encoder(params), tmp_path)
  with pytest.raises(scoring.ScoringError,
                     match="Unknown dataset name 'colored_sprite'.*"
                     "colored_sprites"):
    api.score_onnx(path, "colored_sprite", ["mig"], config_dir=TINY_METRICS)


def test_fixed_batch_model_gets_padded_batches(tmp_path):
  # Exported with batch 5: metrics still get one vector per image.
  params = onnx_models.linear_params(shape=DUMMY_SHAPE, dims=3, sparse=True)
  fixed = _save(onnx_models.onnx_encoder(params, batch=5), tmp_path, "f.onnx")
  dynamic = _save(onnx_models.onnx_encoder(params), tmp_path, "d.onnx")
  from sbd_plugin.scoring import onnx_model  # pylint: disable=g-import-not-at-top
  images = np.random.RandomState(0).uniform(size=(12,) + DUMMY_SHAPE).astype(
      np.float32)
  a = onnx_model.OnnxModel(fixed, list(DUMMY_SHAPE))(images)
  b = onnx_model.OnnxModel(dynamic, list(DUMMY_SHAPE))(images)
  assert a.shape == (12, 3)
  np.testing.assert_array_equal(a, b)


def test_cli_exits_2_with_the_message_and_runs_nothing(tmp_path):
  params = onnx_models.linear_params(shape=(64, 64, 3), dims=3)
  path = _save(onnx_models.onnx_encoder(params), tmp_path)
  out = tmp_path / "out"
  proc = run_tool(["sbd_score", "--model", path, "--dataset", "dummy_data",
                   "--metrics", "mig", "--output", str(out),
                   "--metric-config-dir", TINY_METRICS], check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "sbd_score: error: Model model.onnx takes input" in proc.stderr
  assert "Traceback" not in proc.stderr
  assert not out.exists()
