"""DCI and the boosted-trees downstream task in parallel: dlib's exact numbers.

dlib's metrics and gin are process-global, so each check runs in a fresh
process (as a user's `dlib_evaluate` does) and prints its results as JSON.
"""
import json
import sys
import textwrap

import pytest

from tests.helpers import run_tool

# dlib's DummyData (10 factors of 5 values) seen through a fixed random linear
# representation; `stock` recompiles a function from dlib's installed file,
# the loop the plugin replaces, in its module's namespace (so with the
# plugin's seeded `ensemble`).
_PRELUDE = textwrap.dedent("""
    import ast, inspect, json, os
    import numpy as np
    import gin
    from disentanglement_lib.data.ground_truth import dummy_data
    from disentanglement_lib.evaluation.metrics import dci, downstream_task
    from sbd_plugin.dlib_bridge import parallel_metrics, reproducibility

    data = dummy_data.DummyData()
    weights = np.random.RandomState(0).normal(size=(64 * 64, 10))

    def represent(x):
      return np.reshape(x, (len(x), -1)) @ weights

    def stock(module, name):
      tree = ast.parse(inspect.getsource(module))
      node = [n for n in tree.body if getattr(n, "name", None) == name][0]
      namespace = dict(vars(module))
      exec(compile(ast.Module([node], []), module.__file__, "exec"),
           namespace)
      return namespace[name]

    def jobs(n):
      gin.clear_config()
      if n is not None:
        gin.bind_parameter("metric_parallelism.n_jobs", n)

    def run_dci(n):
      jobs(n)
      return dci.compute_dci(data, represent, np.random.RandomState(1),
                             num_train=100, num_test=50)

    def children():
      me = str(os.getpid())
      found = 0
      for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
          with open("/proc/%s/stat" % pid) as f:
            found += f.read().rsplit(")", 1)[1].split()[1] == me
        except OSError:
          pass
      return found

    def run_downstream(n):
      jobs(n)
      gin.bind_parameter("predictor.predictor_fn",
                         gin.config.ConfigurableReference(
                             "gradient_boosting_classifier", False))
      return downstream_task.compute_downstream_task(
          data, represent, np.random.RandomState(1), num_train=[100],
          num_test=50)
    """)

_METRICS = _PRELUDE + textwrap.dedent("""
    out = {"installed": [dci.compute_importance_gbt is
                         parallel_metrics.compute_importance_gbt,
                         # Wrapped by stack_fixes' downstream_small_sizes.
                         downstream_task._compute_loss.__wrapped__ is
                         parallel_metrics.compute_loss]}
    out["dci"] = {"sequential": run_dci(1)}
    out["children_after_sequential"] = children()
    out["dci"]["parallel"] = run_dci(2)
    out["children_after_parallel"] = children()
    out["dci"]["parallel_again"] = run_dci(2)
    out["downstream"] = {"sequential": run_downstream(1),
                         "parallel": run_downstream(2),
                         "parallel_again": run_downstream(2)}

    # dlib's own loops (recompiled from its file) on the same arrays, with
    # the same seeds.
    def seeded(fn, *args):
      jobs(2)
      with reproducibility.estimator_seeds(np.random.RandomState(7)):
        return fn(*args)

    rs = np.random.RandomState(1)
    x_train, y_train = dci.utils.generate_batch_factor_code(
        data, represent, 100, rs, 16)
    x_test, y_test = dci.utils.generate_batch_factor_code(
        data, represent, 50, rs, 16)
    codes = (x_train, y_train[:3], x_test, y_test[:3])  # 3 factors suffice.
    out["importance"] = {}
    for name, fn in (("stock", stock(dci, "compute_importance_gbt")),
                     ("parallel", parallel_metrics.compute_importance_gbt)):
      matrix, train, test = seeded(fn, *codes)
      out["importance"][name] = [matrix.tolist(), train, test]
    predictor = downstream_task.utils.gradient_boosting_classifier
    out["loss"] = {
        name: seeded(fn, x_train.T, y_train[:3], x_test.T, y_test[:3],
                     predictor)
        for name, fn in (("stock", stock(downstream_task, "_compute_loss")),
                         ("parallel", parallel_metrics.compute_loss))}
    print(json.dumps(out))
    """)


@pytest.fixture(scope="module")
def metrics():
  """The results of _METRICS, run once in a fresh process."""
  proc = run_tool([sys.executable, "-c", _METRICS], timeout=600)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_replacements_are_installed_and_fit_in_worker_processes(metrics):
  assert metrics["installed"] == [True, True]
  assert metrics["children_after_sequential"] == 0  # n_jobs=1: in-process.
  assert metrics["children_after_parallel"] >= 2


def test_parallel_dci_is_bit_identical_to_sequential_and_repeats(metrics):
  dci = metrics["dci"]
  assert set(dci["sequential"]) == {"disentanglement", "completeness",
                                    "informativeness_train",
                                    "informativeness_test"}
  # Every score to the last bit (JSON keeps a float's 17 digits).
  assert dci["parallel"] == dci["sequential"]
  assert dci["parallel_again"] == dci["parallel"]
  assert 0 < dci["sequential"]["informativeness_train"] <= 1


def test_parallel_boosted_trees_downstream_task_is_bit_identical(metrics):
  downstream = metrics["downstream"]
  assert "100:test_accuracy_factor_9" in downstream["sequential"]
  assert downstream["parallel"] == downstream["sequential"]
  assert downstream["parallel_again"] == downstream["parallel"]


def test_parallel_loops_give_dlibs_own_numbers(metrics):
  importance, loss = metrics["importance"], metrics["loss"]
  assert importance["parallel"] == importance["stock"]
  assert loss["parallel"] == loss["stock"]


_JOBS = textwrap.dedent("""
    import json, os
    import gin
    from sbd_plugin.dlib_bridge import parallel_metrics

    def jobs():
      try:
        return parallel_metrics.metric_jobs()
      except ValueError as e:
        return str(e)

    out = {"cores": parallel_metrics.available_cores()}
    for value in ("1", " 5 ", "", "0", "two"):
      os.environ["SBD_METRIC_JOBS"] = value
      out[value] = jobs()
    del os.environ["SBD_METRIC_JOBS"]
    out["unset"] = jobs()
    os.environ["SBD_METRIC_JOBS"] = "1"
    gin.bind_parameter("metric_parallelism.n_jobs", 3)
    out["gin"] = jobs()
    gin.bind_parameter("metric_parallelism.n_jobs", -1)
    out["gin_bad"] = jobs()
    print(json.dumps(out))
    """)


def test_number_of_jobs_from_gin_then_variable_then_cores():
  out = json.loads(run_tool([sys.executable, "-c", _JOBS], timeout=300)
                   .stdout.strip().splitlines()[-1])
  assert out["cores"] >= 1
  assert (out["1"], out[" 5 "]) == (1, 5)
  assert out[""] == out["unset"] == out["cores"]
  assert out["0"].startswith("$SBD_METRIC_JOBS must be a positive integer, "
                             "got '0'.")
  assert "got 'two'" in out["two"]
  assert out["gin"] == 3  # A gin binding wins over the variable.
  assert out["gin_bad"].startswith("metric_parallelism.n_jobs must be a "
                                   "positive integer, got -1.")
