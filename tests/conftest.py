"""Shared pytest set-up: CPU only, quiet TensorFlow, expensive things made once.

Under pytest-xdist every worker is a process of its own, so a session fixture
would run once per worker. What is expensive (the dataset cache, a trained
tiny model, a finished tiny study) is instead built once per test session in
a folder all workers share, under a file lock: the first worker builds it,
the others wait and reuse it. A test that must change one works on a copy.
"""
import collections
import errno
import fcntl
import os
import shutil

import pytest

from tests import helpers

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _shared_root(tmp_path_factory):
  """A folder shared by every xdist worker of this test session."""
  base = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    base = base.parent  # Each worker's basetemp is a child of the session's.
  root = base / "shared"
  root.mkdir(exist_ok=True)
  return root


def build_once(tmp_path_factory, name, build):
  """Builds `name` once per test session, whatever the number of workers.

  Args:
    tmp_path_factory: pytest's factory (gives the session's folder).
    name: Folder name of the thing built.
    build: Function of the target path (a pathlib.Path that does not exist
      yet) that builds it there.

  Returns:
    The path of the built folder. A build that failed is tried again by the
    next test that asks, so its error is reported by each.
  """
  root = _shared_root(tmp_path_factory)
  target = root / name
  done = root / (name + ".built")
  with open(root / (name + ".lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      if target.exists():
        shutil.rmtree(target)
      build(target)
      done.write_text("")
  return target


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
  """One dataset cache for the whole session (each dataset built once).

  Also points dlib's data folder at an empty one, so that every test (and
  every tool it runs) uses the generated datasets, not a real file that
  happens to be on the machine. Both variables are restored at the end.
  """
  path = os.environ.get("SBD_TEST_CACHE")
  if not path:
    path = str(build_once(tmp_path_factory, "sbd_cache", os.makedirs))
  data = build_once(tmp_path_factory, "dlib_data", os.makedirs)
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("SBD_PLUGIN_CACHE", path)
    patch.setenv("DISENTANGLEMENT_LIB_DATA", str(data))
    yield path


# --- A finished tiny study, made once ---------------------------------------

TinyStudy = collections.namedtuple("TinyStudy", "spec out stdout returncode")


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory):
  """The tiny study run once with `sbd_study run --jobs 1` (pipelined).

  Read-only: a test that changes the folder copies it first (`helpers.copy_study`).
  """
  def build(target):
    target.mkdir()
    spec = target / "tiny.toml"
    spec.write_text(helpers.tiny_study_text())
    proc = helpers.sbd_study(["run", str(spec), "--output",
                              str(target / "out"), "--jobs", "1"],
                             timeout=1200)
    (target / "stdout.txt").write_text(proc.stdout)
    (target / "stderr.txt").write_text(proc.stderr)
    (target / "returncode.txt").write_text(str(proc.returncode))
  root = build_once(tmp_path_factory, "tiny_study", build)
  return TinyStudy(root / "tiny.toml", root / "out",
                   (root / "stdout.txt").read_text(),
                   int((root / "returncode.txt").read_text()))


# --- Models trained once by dlib's own commands -----------------------------

@pytest.fixture(scope="session")
def dlib_model(tmp_path_factory):
  """Function config -> folder of a model dlib_train trained on the tiny budget.

  Each config (`gin_configs/<config>.gin`) is trained, postprocessed (mean)
  and evaluated (the tiny MIG, FactorVAE and DCI configs) once per session
  by dlib's own commands, as a user runs them. Read-only.
  """
  def get(config):
    def build(root):
      model_dir = str(root / "model")
      helpers.run_tool(["dlib_train", "--model_dir=" + model_dir,
                        "--gin_config", "gin_configs/%s.gin" % config] +
                       helpers.gin_bindings(helpers.DLIB_TINY_TRAIN))
      mean_dir = os.path.join(model_dir, "postprocessed", "mean")
      helpers.run_tool(["dlib_postprocess", "--model_dir=" + model_dir,
                        "--output_dir=" + mean_dir, "--gin_config",
                        "gin_configs/postprocess/mean.gin"])
      helpers.run_tool(["dlib_evaluate", "--input_dir=" + mean_dir,
                        "--output_dir=" + os.path.join(model_dir, "metrics"),
                        "--gin_evaluation_config_glob=" + os.path.join(
                            helpers.TINY_METRICS, "*.gin")])
    return str(build_once(tmp_path_factory, "dlib_" + config, build) /
               "model")
  return get


@pytest.fixture(scope="session")
def dummy_model(tmp_path_factory):
  """A broadcast VAE trained 5 steps on dlib's dummy_data by dlib_train."""
  def build(root):
    helpers.run_tool(["dlib_train", "--model_dir=" + str(root / "m"),
                      "--gin_config", "gin_configs/broadcast_vae.gin"] +
                     helpers.gin_bindings(["dataset.name='dummy_data'",
                                   "model.training_steps=5",
                                   "model.eval_steps=1",
                                   "model.batch_size=8"]), timeout=300)
  return str(build_once(tmp_path_factory, "dummy_model", build) / "m")


@pytest.fixture
def no_flock(monkeypatch):
  """`fcntl.flock` raises ENOSYS, as on Lustre and some NFS mounts: locks
  fall back to lock files (evaluation.processes.FolderLock)."""
  def refuse(fd, operation):
    raise OSError(errno.ENOSYS, "Function not implemented")
  monkeypatch.setattr(fcntl, "flock", refuse)
