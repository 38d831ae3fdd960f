"""Same seed, same numbers; resumed training; data files that never unpickle.

Each test runs dlib's code in fresh processes, as a user does, and compares
results bit for bit.
"""
import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests import helpers
from tests.helpers import run_tool


# Keys of train_results.json that differ between two trainings by design.
_DIFFER = ("uuid", "elapsed_time", "resumed_from_step")


def _assert_same_model(dir_a, dir_b):
  a = helpers.checkpoint_variables(dir_a)
  b = helpers.checkpoint_variables(dir_b)
  assert sorted(a) == sorted(b)
  differ = [n for n in a if not np.array_equal(a[n], b[n])]
  assert not differ, differ
  assert (helpers.train_results(dir_a, _DIFFER) ==
          helpers.train_results(dir_b, _DIFFER))


@pytest.mark.parametrize("config", ["broadcast_factorvae",
                                    "deconv_factorvae"])
def test_dlib_train_twice_gives_bit_identical_models(tmp_path, config,
                                                      dlib_model):
  """A second dlib_train of the session's model gives the same bits."""
  again = str(tmp_path / "again")
  run_tool(["dlib_train", "--model_dir=" + again, "--gin_config",
            "gin_configs/%s.gin" % config] +
           helpers.gin_bindings(helpers.DLIB_TINY_TRAIN))
  _assert_same_model(dlib_model(config), again)


_RESUMABLE = textwrap.dedent("""
    import sys
    from sbd_plugin.dlib_bridge import resumable_train
    model_dir, steps = sys.argv[1], int(sys.argv[2])
    resumable_train.train_with_gin(
        model_dir, ["gin_configs/broadcast_factorvae.gin"],
        ["model.training_steps = %d" % steps, "model.eval_steps = 2",
         "model.batch_size = 8", "dataset.name = 'colored_sprites'",
         "checkpoints.every_steps = 4"])
    """)


def test_resumed_training_is_bit_identical_to_uninterrupted(tmp_path):
  def train(model_dir, steps):
    run_tool([sys.executable, "-c", _RESUMABLE, model_dir, str(steps)])

  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  train(straight, 12)
  train(resumed, 6)  # As if killed after a checkpoint half-way ...
  for name in ("results", "tfhub"):  # ... before its results were written.
    subprocess.run(["rm", "-rf", os.path.join(resumed, name)], check=True)
  train(resumed, 12)
  with open(os.path.join(resumed, "results", "json",
                         "train_results.json")) as f:
    # FactorVAE's global step counts the VAE's and the discriminator's
    # updates: stock dlib's `steps=6` stops at 8, as does the first run here.
    assert json.load(f)["resumed_from_step"] == 8
  _assert_same_model(straight, resumed)


_METRICS = textwrap.dedent("""
    import json
    import numpy as np
    from disentanglement_lib.data.ground_truth import dummy_data
    from disentanglement_lib.evaluation.metrics import dci, downstream_task
    from disentanglement_lib.evaluation.metrics import sap_score, utils
    import gin
    data = dummy_data.DummyData()
    weights = np.random.RandomState(0).normal(size=(64 * 64, 10))
    def represent(x):
      return np.reshape(x, (len(x), -1)) @ weights
    gin.parse_config("predictor.predictor_fn = @gradient_boosting_classifier")
    out = {}
    for i in range(2):
      out["dci%d" % i] = dci.compute_dci(
          data, represent, np.random.RandomState(1), num_train=200,
          num_test=100)
      out["sap%d" % i] = sap_score.compute_sap(
          data, represent, np.random.RandomState(1), num_train=200,
          num_test=100, continuous_factors=False)
      out["down%d" % i] = downstream_task.compute_downstream_task(
          data, represent, np.random.RandomState(1), num_train=[100],
          num_test=50)
    print(json.dumps(out))
    """)


def test_sklearn_based_metrics_repeat_bit_for_bit():
  """dlib's DCI, SAP and boosted-trees downstream task, twice per process."""
  runs = [json.loads(run_tool([sys.executable, "-c", _METRICS]).stdout
                     .strip().splitlines()[-1]) for _ in range(2)]
  for out in runs:
    for name in ("dci", "sap", "down"):
      assert out[name + "0"] == out[name + "1"], name
  assert runs[0] == runs[1]


class _Payload(object):
  """Unpickling this object writes a file: a stand-in for any code."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, "w"))


_LOAD_DSPRITES = textwrap.dedent("""
    from disentanglement_lib.data.ground_truth import dsprites
    data = dsprites.DSprites([1, 2, 3, 4, 5])
    print("factor sizes", [int(s) for s in data.factor_sizes])  # NumPy 2 reprs np.int64(1)
    """)


def _dsprites_file(root, **arrays):
  folder = root / "dsprites"
  folder.mkdir(parents=True, exist_ok=True)
  np.savez(folder / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
           **arrays)


def test_dlibs_dsprites_loader_never_unpickles(tmp_path):
  marker = tmp_path / "payload_ran"
  metadata = np.empty((), dtype=object)
  metadata[()] = {"latents_sizes": np.array([1, 3, 6, 40, 32, 32]),
                  "payload": _Payload(str(marker))}
  classes = np.zeros((4, 6), np.int64)
  _dsprites_file(tmp_path, imgs=np.zeros((4, 64, 64), np.uint8),
                 latents_classes=classes, metadata=metadata)
  env = {"DISENTANGLEMENT_LIB_DATA": str(tmp_path)}
  # Stock dlib runs the payload: the file really is malicious.
  stock = run_tool([sys.executable, "-c", _LOAD_DSPRITES], check=False,
                   env=dict(env, SBD_PLUGIN_DISABLE="1"))
  assert marker.exists(), stock.stderr[-2000:]
  marker.unlink()
  # With the plugin: loads without unpickling, sizes from latents_classes.
  proc = run_tool([sys.executable, "-c", _LOAD_DSPRITES], env=env)
  assert not marker.exists()
  assert "factor sizes [1, 1, 1, 1, 1, 1]" in proc.stdout
  # A file whose images are themselves pickled objects is refused clearly.
  _dsprites_file(tmp_path, imgs=metadata, latents_classes=classes)
  proc = run_tool([sys.executable, "-c", _LOAD_DSPRITES], env=env,
                  check=False)
  assert proc.returncode != 0 and not marker.exists()
  assert "member 'imgs' is a pickled object array. sbd_plugin never " \
         "unpickles data files" in proc.stderr


def test_a_study_run_twice_gives_a_bit_identical_results_table(tiny_study,
                                                               tmp_path):
  """The session's study (--jobs 1) again with --jobs 2: the same results.csv.

  Without the runs that fail by design: the table has only finished runs.
  """
  spec = tmp_path / "study.toml"
  spec.write_text(helpers.tiny_study_text(datasets=("colored_sprites",)))
  out = tmp_path / "out"
  run_tool(["sbd_study", "run", str(spec), "--output", str(out), "--jobs", "2",
            "--no-report"], timeout=1200)
  run_tool(["sbd_study", "report", str(spec), "--output", str(out)],
           timeout=1200)
  table = (out / "results" / "results.csv").read_bytes()
  assert table == (tiny_study.out / "results" / "results.csv").read_bytes()
  assert table.count(b"\n") == 1 + 2 * 5  # header + 2 runs x 5 rows
  _assert_pipelined(tiny_study.out, tiny_study.stdout)


def _phase_starts(out, run_id):
  """{phase: start time} from the worker's log lines."""
  with open(out / "runs" / run_id / "worker.log") as f:
    found = re.findall(r"\[worker\] (\w+) phase of \S+ starts at ([\d.]+)",
                       f.read())
  return {phase: float(at) for phase, at in found}


def _assert_pipelined(out, stdout):
  """With --jobs 1 the first run evaluates while the second trains."""
  runs = helpers.TINY_STUDY_RUNS
  first, second = (_phase_starts(out, run_id) for run_id in runs)
  first_done = os.path.getmtime(out / "runs" / runs[0] / "DONE.json")
  assert first["train"] < second["train"] < first_done
  assert first["evaluate"] < first_done
  # The summary says where each run's time went.
  assert re.search(r"\| all runs \| \d+", stdout), stdout
