"""The shipped gin configs and study files.

Each model has two pairs of configs that differ only in `decoder.decoder_fn`:
broadcast_<m>.gin / deconv_<m>.gin (dlib's encoder and stock decoder) and
paper_broadcast_<m>.gin / paper_deconv_<m>.gin (the paper's encoder and DeConv
baseline). Every config parses with dlib's configurables registered; every
ready study file plans the runs its header says.
"""
import glob
import os
import re

import gin
import pytest

import sbd_plugin  # pylint: disable=unused-import
# Register the configurables the configs bind, as the dlib_* scripts do.
from disentanglement_lib.evaluation import evaluate  # pylint: disable=unused-import
from disentanglement_lib.methods.unsupervised import train  # pylint: disable=unused-import
from disentanglement_lib.postprocessing import postprocess  # pylint: disable=unused-import
from evaluation import study as study_lib
from tests.helpers import REPO

MODELS = ("vae", "beta_vae", "factorvae", "beta_tc_vae", "dip_vae",
          "annealed_vae")
# Decoder prefix of a config pair -> (encoder, decoder) its configs bind.
PAIRS = {
    "broadcast": ("@conv_encoder", "@spatial_broadcast_decoder"),
    "deconv": ("@conv_encoder", "@deconv_decoder"),
    "paper_broadcast": ("@paper_conv_encoder", "@spatial_broadcast_decoder"),
    "paper_deconv": ("@paper_conv_encoder", "@paper_deconv_decoder"),
}
# Each model's regulariser as bound in gin_configs/common/<model>.gin: the
# values of dlib's unsupervised_study_v1 sweep (sweep.py) the configs pick.
MODEL_BINDINGS = {
    "vae": {"vae.beta": 1.},
    "beta_vae": {"vae.beta": 4.},
    "factorvae": {"factor_vae.gamma": 30.},
    "beta_tc_vae": {"beta_tc_vae.beta": 6.},
    "dip_vae": {"dip_vae.lambda_od": 10., "dip_vae.lambda_d_factor": 10.,
                "dip_vae.dip_type": "i"},
    "annealed_vae": {"annealed_vae.c_max": 25.,
                     "annealed_vae.iteration_threshold": 100000,
                     "annealed_vae.gamma": 1000},
}
STUDIES = os.path.join(REPO, "gin_configs", "studies")
# The CPU demo is not a ready protocol study.
READY_STUDIES = sorted(set(glob.glob(os.path.join(STUDIES, "*.toml"))) -
                       {os.path.join(STUDIES, "demo.toml")})


def _bindings(path):
  with open(path) as f:
    return {line.strip() for line in f
            if line.strip() and not line.lstrip().startswith("#")}


def _config(prefix, model):
  return os.path.join(REPO, "gin_configs", "%s_%s.gin" % (prefix, model))


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("broadcast,deconv", [("broadcast", "deconv"),
                                              ("paper_broadcast",
                                               "paper_deconv")])
def test_broadcast_and_deconv_configs_differ_only_in_the_decoder(
    model, broadcast, deconv):
  broadcast_lines = _bindings(_config(broadcast, model))
  deconv_lines = _bindings(_config(deconv, model))
  assert broadcast_lines - deconv_lines == {
      "decoder.decoder_fn = %s" % PAIRS[broadcast][1]}
  assert deconv_lines - broadcast_lines == {
      "decoder.decoder_fn = %s" % PAIRS[deconv][1]}


def _query(name):
  value = gin.query_parameter(name)
  return "@%s" % value.selector if isinstance(
      value, gin.config.ConfigurableReference) else value


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("prefix", sorted(PAIRS))
def test_model_configs_bind_their_architecture_and_dlib_sweep_values(
    prefix, model):
  gin.clear_config()
  try:
    gin.parse_config_file(_config(prefix, model))
    assert (_query("encoder.encoder_fn"),
            _query("decoder.decoder_fn")) == PAIRS[prefix]
    for name, value in MODEL_BINDINGS[model].items():
      assert _query(name) == value, name
    assert gin.query_parameter("model.training_steps") == 1500000
  finally:
    gin.clear_config()


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


def test_every_model_config_is_one_of_the_pairs():
  names = {os.path.basename(p) for p in glob.glob(
      os.path.join(REPO, "gin_configs", "*.gin"))}
  assert names == {"%s_%s.gin" % (prefix, model)
                   for prefix in PAIRS for model in MODELS}


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


@pytest.mark.parametrize("path", READY_STUDIES,
                         ids=[os.path.basename(p) for p in READY_STUDIES])
def test_ready_studies_plan_the_runs_their_header_states(path):
  study = study_lib.parse_study(path)
  with open(path) as f:
    header = f.read().split("\nname = ", 1)[0]
  stated = re.search(r"^# Runs: (\d+) ", header, re.MULTILINE)
  assert stated, "%s: no '# Runs: N ...' line in the header" % path
  assert int(stated.group(1)) == len(study.runs)
  assert "GPU" in header  # the estimated GPU time and its arithmetic
  assert study.baseline in {run.decoder for run in study.runs}
  for run in study.runs:
    assert all(os.path.isfile(c) for c in run.model_configs)
