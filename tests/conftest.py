"""Shared pytest set-up: CPU only, quiet TensorFlow, one dataset cache per run."""
import os

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
  """One dataset cache for the whole session (each dataset built once).

  Also points dlib's data folder at an empty one, so that every test (and
  every tool it runs) uses the generated datasets, not a real file that
  happens to be on the machine. Both variables are restored at the end.
  """
  path = os.environ.get("SBD_TEST_CACHE") or str(
      tmp_path_factory.mktemp("sbd_cache"))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("SBD_PLUGIN_CACHE", path)
    patch.setenv("DISENTANGLEMENT_LIB_DATA",
                 str(tmp_path_factory.mktemp("dlib_data")))
    yield path
