"""A name from a study, a run.json or the command line never names a folder
outside its own (the worker removes a metric's folder to redo it)."""
import dataclasses
import os

import pytest

from evaluation import layout
from evaluation import study as study_lib
from sbd_plugin import safe_names
from sbd_plugin.scoring import api


def _run(**changed):
  return dataclasses.replace(study_lib.Run(
      run_id="ds-vae-deconv-seed0", dataset="ds", model="vae",
      decoder="deconv", seed=0, sweep=(), model_configs=(),
      train_bindings=(), dataset_bindings=(), postprocess_config="",
      metric_configs=(("mig", "gin_configs/metrics/mig.gin"),),
      metric_bindings=()), **changed)


@pytest.mark.parametrize("name", ["../../victim", "/tmp/victim", "..", ".",
                                  "", "a/b", "mig\0"])
def test_a_metric_folder_is_never_a_path(tmp_path, name):
  with pytest.raises(ValueError, match="not a single folder name"):
    layout.metric_dir(str(tmp_path), name)
  with pytest.raises(ValueError, match="not a single folder name"):
    api.metric_dir(str(tmp_path), name)
  assert safe_names.folder_name("mig", "metric name") == "mig"
  assert layout.metric_dir(str(tmp_path), "mig").startswith(str(tmp_path))


def test_a_run_json_with_a_path_for_a_metric_name_is_refused(tmp_path):
  # The runner rewrites run.json from the checked study file, but a stale
  # or hand-edited one reaches the worker directly.
  text = _run(metric_configs=(("../../../victim", "x.gin"),)).to_json()
  with pytest.raises(study_lib.StudyError,
                     match=r"metric name '\.\./\.\./\.\./victim' in its "
                           r"run\.json is not a plain name"):
    study_lib.Run.from_json(text)
  assert study_lib.Run.from_json(_run().to_json()) == _run()
  assert os.listdir(tmp_path) == []
