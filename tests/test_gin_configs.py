"""The shipped gin configs: pairs differ only in the decoder, all parse."""
import glob
import os

import gin
import pytest

import sbd_plugin  # pylint: disable=unused-import
# Register the configurables the configs bind, as the dlib_* scripts do.
from disentanglement_lib.evaluation import evaluate  # pylint: disable=unused-import
from disentanglement_lib.methods.unsupervised import train  # pylint: disable=unused-import
from disentanglement_lib.postprocessing import postprocess  # pylint: disable=unused-import
from tests.conftest import REPO

MODELS = ("vae", "beta_vae", "factorvae")


def _bindings(path):
  with open(path) as f:
    return {line.strip() for line in f
            if line.strip() and not line.lstrip().startswith("#")}


@pytest.mark.parametrize("model", MODELS)
def test_broadcast_and_deconv_configs_differ_only_in_the_decoder(model):
  broadcast = _bindings(os.path.join(REPO, "gin_configs",
                                     "broadcast_%s.gin" % model))
  deconv = _bindings(os.path.join(REPO, "gin_configs", "deconv_%s.gin" % model))
  assert broadcast - deconv == {"decoder.decoder_fn = @spatial_broadcast_decoder"}
  assert deconv - broadcast == {"decoder.decoder_fn = @deconv_decoder"}


@pytest.mark.parametrize("path", sorted(
    glob.glob(os.path.join(REPO, "gin_configs", "*.gin"))))
def test_model_configs_parse_from_any_directory(path, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # includes must not depend on the cwd
  gin.clear_config()
  try:
    gin.parse_config_file(path)
    assert gin.query_parameter("dataset.name") == "colored_sprites"
    assert gin.query_parameter("encoder.num_latent") == 10
    assert gin.query_parameter("model.batch_size") == 16
  finally:
    gin.clear_config()


@pytest.mark.parametrize("path", sorted(
    glob.glob(os.path.join(REPO, "gin_configs", "metrics", "*.gin")) +
    glob.glob(os.path.join(REPO, "gin_configs", "postprocess", "*.gin"))))
def test_step_configs_use_auto_dataset(path):
  gin.clear_config()
  try:
    gin.parse_config_file(path)
    assert gin.query_parameter("dataset.name") == "auto"
  finally:
    gin.clear_config()
