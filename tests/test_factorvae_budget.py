"""Every model of a ready study trains the same number of batches.

dlib's FactorVAE advances the global step twice per batch (one `minimize`
for the VAE, one for the discriminator), so `model.training_steps` counts
half as many batches for it; the study files give it twice the steps through
`[model_bindings]`, which the study format validates like the rest.
"""
import glob
import os
import re
import tomllib

import pytest

from evaluation import study as study_lib
from evaluation.benchmark import gpu_estimate
from tests.helpers import REPO

STUDIES = sorted(glob.glob(os.path.join(REPO, "gin_configs", "studies",
                                        "*.toml")))
# Global steps per batch, by study model name.
STEPS_PER_BATCH = {"factorvae": 2}


def _default_steps():
  with open(os.path.join(REPO, "gin_configs", "common", "model.gin")) as f:
    return int(re.search(r"^model\.training_steps = (\d+)", f.read(),
                         re.MULTILINE).group(1))


def _batches(run):
  """Batches a run trains: its last training_steps binding, or model.gin's."""
  steps = _default_steps()
  for binding in run.train_bindings:
    found = re.match(r"^model\.training_steps = (\d+)$", binding)
    if found:
      steps = int(found.group(1))
  return steps // STEPS_PER_BATCH.get(run.model, 1)


@pytest.mark.parametrize("path", STUDIES, ids=os.path.basename)
def test_every_model_of_a_study_trains_as_many_batches(path):
  study = study_lib.parse_study(path)
  batches = {run.model: _batches(run) for run in study.runs}
  assert len(set(batches.values())) == 1, batches


def _reduced_budget(path):
  """Whether a study binds its own training steps (a CPU-scale study)."""
  with open(path, "rb") as f:
    bindings = tomllib.load(f).get("train", {}).get("bindings", [])
  return any(b.startswith("model.training_steps") for b in bindings)


def test_the_paper_studies_give_factorvae_the_papers_batches():
  for path in STUDIES:
    if _reduced_budget(path):
      continue
    study = study_lib.parse_study(path)
    for run in study.runs:
      if run.model == "factorvae":
        assert _batches(run) == 1500000, (path, run.run_id)
        assert "model.training_steps = 3000000" in run.train_bindings


def test_the_gpu_estimate_counts_the_batches_the_studies_plan():
  assert set(gpu_estimate.BATCHES.values()) == {1.5e6}


BASE = """name = "x"
datasets = ["colored_sprites"]
models = ["vae", "factorvae"]
decoders = ["deconv"]
seeds = [0]
"""
TRAIN = """[train]
bindings = ["model.training_steps = 10"]
"""


def test_model_bindings_follow_the_training_bindings(tmp_path):
  spec = tmp_path / "s.toml"
  spec.write_text(BASE + '[model_bindings]\nfactorvae = '
                  '["model.training_steps = 20"]\n' + TRAIN)
  runs = {run.model: run for run in study_lib.parse_study(str(spec)).runs}
  assert "model.training_steps = 20" not in runs["vae"].train_bindings
  bindings = runs["factorvae"].train_bindings
  assert bindings.index("model.training_steps = 20") > bindings.index(
      "model.training_steps = 10")
  assert _batches(runs["vae"]) == _batches(runs["factorvae"]) == 10


@pytest.mark.parametrize("table,message", [
    ('[model_bindings]\nbeta_vae = ["a.b = 1"]',
     "Study field `model_bindings` names 'beta_vae', which is not in "
     "`models` (vae, factorvae)"),
    ('[model_bindings]\nfactorvae = "model.training_steps = 20"',
     "Study field `model_bindings.factorvae`: must be a list of gin binding "
     "strings"),
    ('[model_bindings]\nfactorvae = ["a.b = 1\\nc.d = 2"]',
     "Study field `model_bindings.factorvae[0]`: must be one gin binding per "
     "list item"),
    ('model_bindings = ["x"]', "Study field `model_bindings`: must be a table "
     "of name -> value"),
    ('[model_binding]\nfactorvae = []', "Unknown study key `model_binding` "
     "(did you mean `model_bindings`?)"),
])
def test_bad_model_bindings_say_what_to_fix(tmp_path, table, message):
  spec = tmp_path / "s.toml"
  spec.write_text(BASE + table + "\n" + TRAIN)
  with pytest.raises(study_lib.StudyError) as raised:
    study_lib.parse_study(str(spec))
  assert message in str(raised.value)
