"""DCI and the boosted-trees downstream task, fitted on every core.

dlib's `dci.compute_importance_gbt` and `downstream_task._compute_loss` fit
one classifier per factor, one after another, on one core: at dlib's study
settings (10,000 train / 5,000 test points) DCI's gradient boosted trees take
many minutes per model. The replacements below give the same numbers and fit
the factors' classifiers concurrently:

- the classifiers are built in the calling thread, in factor order, exactly as
  dlib builds them (`dci.ensemble.GradientBoostingClassifier()`, or dlib's
  `predictor_fn()`), so each factor gets the seed it gets in dlib's loop
  (`reproducibility.install_seeded_estimators` seeds the k-th estimator built
  inside a metric with base + k);
- only `fit` runs elsewhere: in worker processes (joblib's loky backend), the
  largest factors first. The workers receive the unfitted classifier and the
  arrays and send the fitted classifier back; they import scikit-learn only
  (a function of this module would make every worker import sbd_plugin,
  hence TensorFlow). On 2 idle cores threads were as fast (the tree builder
  runs without the GIL for ~80% of a fit at 5,000-10,000 points); processes
  cost a fixed few seconds of start-up, while the GIL-holding Python part
  of each fit (gradients, leaf values, tree set-up) serialises threads more
  the more fits run at once (docs/benchmarks.md, "DCI in parallel");
- importances and accuracies are computed from the fitted classifiers in the
  calling process, in factor order, with dlib's expressions.

Workers: `metric_parallelism.n_jobs` (gin) if bound, else `$SBD_METRIC_JOBS`,
else every core this process may use; 1 fits in this process, one factor
after another, as dlib does.
"""
import os

import gin
import numpy as np

from sbd_plugin.dlib_bridge.stack_fixes import FixInfo

ENV = "SBD_METRIC_JOBS"
CONFIGURABLE = "metric_parallelism"
# joblib backend of the fits ("threading" runs them in threads of this
# process); see the module docstring for why processes.
BACKEND = "loky"


def available_cores():
  """Number of cores this process may use.

  Returns:
    joblib's count: the cores of the process's CPU affinity
    (`os.sched_getaffinity`: Slurm's and taskset's cpusets), fewer under a
    container's CPU quota (cgroup `cpu.max`, which the affinity does not
    show), at least 1.
  """
  import joblib  # pylint: disable=g-import-not-at-top
  return joblib.cpu_count()


@gin.configurable(CONFIGURABLE, allowlist=["n_jobs"])
def metric_jobs(n_jobs=None):
  """Number of processes fitting a metric's per-factor classifiers.

  Args:
    n_jobs: Number of worker processes; None reads `$SBD_METRIC_JOBS`, and
      without it every available core. 1 fits in the calling process.

  Returns:
    Positive int.

  Raises:
    ValueError: if the number (binding or variable) is not a positive int.
  """
  source = CONFIGURABLE + ".n_jobs"
  if n_jobs is None and os.environ.get(ENV, "").strip():
    n_jobs, source = os.environ[ENV].strip(), "$" + ENV
  if n_jobs is None:
    return available_cores()
  try:
    jobs = int(str(n_jobs).strip())
  except ValueError:
    jobs = 0
  if jobs < 1:
    raise ValueError("%s must be a positive integer, got %r." %
                     (source, n_jobs))
  return jobs


def fit_all(models, x, ys, n_jobs=None):
  """Fits models[i] on (x, ys[i]) for every i, concurrently.

  Args:
    models: List of unfitted scikit-learn estimators, one per target.
    x: Inputs, shape [num_points, num_features], shared by every model.
    ys: List of targets, each of shape [num_points].
    n_jobs: Number of worker processes (default: `metric_jobs()`); 1 fits
      in this process, in order.

  Returns:
    List of the fitted estimators, in the order of `models`.
  """
  if n_jobs is None:
    n_jobs = metric_jobs()
  n_jobs = min(n_jobs, len(models))
  if n_jobs <= 1:
    return [model.fit(x, y) for model, y in zip(models, ys)]
  import joblib  # pylint: disable=g-import-not-at-top
  # Largest first (a boosting stage fits one tree per class): the slowest
  # fit starts at once instead of last, and the rest fill in around it.
  order = sorted(range(len(models)), key=lambda i: -len(np.unique(ys[i])))
  fitted = joblib.Parallel(n_jobs=n_jobs, backend=BACKEND, batch_size=1)(
      joblib.delayed(models[i].fit)(x, ys[i]) for i in order)
  result = [None] * len(models)
  for i, model in zip(order, fitted):
    result[i] = model
  return result


def compute_importance_gbt(x_train, y_train, x_test, y_test):
  """dlib's `dci.compute_importance_gbt`, the factors fitted concurrently.

  Args:
    x_train: Codes, shape [num_codes, num_train].
    y_train: Factors, shape [num_factors, num_train].
    x_test: Codes, shape [num_codes, num_test].
    y_test: Factors, shape [num_factors, num_test].

  Returns:
    importance_matrix: shape [num_codes, num_factors], the absolute feature
      importances of factor i's classifier in column i.
    Mean over the factors of the train accuracy.
    Mean over the factors of the test accuracy.
  """
  from disentanglement_lib.evaluation.metrics import dci  # pylint: disable=g-import-not-at-top
  num_factors = y_train.shape[0]
  num_codes = x_train.shape[0]
  # Built here, in factor order, so that each gets dlib's seed.
  models = [dci.ensemble.GradientBoostingClassifier()
            for _ in range(num_factors)]
  models = fit_all(models, x_train.T, [y_train[i, :]
                                       for i in range(num_factors)])
  importance_matrix = np.zeros(shape=[num_codes, num_factors],
                               dtype=np.float64)
  train_loss = []
  test_loss = []
  for i, model in enumerate(models):
    importance_matrix[:, i] = np.abs(model.feature_importances_)
    train_loss.append(np.mean(model.predict(x_train.T) == y_train[i, :]))
    test_loss.append(np.mean(model.predict(x_test.T) == y_test[i, :]))
  return importance_matrix, np.mean(train_loss), np.mean(test_loss)


def compute_loss(x_train, y_train, x_test, y_test, predictor_fn):
  """dlib's `downstream_task._compute_loss`, the factors fitted concurrently.

  Args:
    x_train: Codes, shape [num_train, num_codes].
    y_train: Factors, shape [num_factors, num_train].
    x_test: Codes, shape [num_test, num_codes].
    y_test: Factors, shape [num_factors, num_test].
    predictor_fn: Callable returning an unfitted classifier (dlib's
      `utils.make_predictor_fn()`).

  Returns:
    List of the train accuracies, one per factor.
    List of the test accuracies, one per factor.
  """
  num_factors = y_train.shape[0]
  models = [predictor_fn() for _ in range(num_factors)]
  models = fit_all(models, x_train, [y_train[i, :]
                                     for i in range(num_factors)])
  train_loss = []
  test_loss = []
  for i, model in enumerate(models):
    train_loss.append(np.mean(model.predict(x_train) == y_train[i, :]))
    test_loss.append(np.mean(model.predict(x_test) == y_test[i, :]))
  return train_loss, test_loss


def install_parallel_metrics():
  """Replaces dlib's per-factor loops (dlib looks them up at call time)."""
  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import dci
  from disentanglement_lib.evaluation.metrics import downstream_task
  # pylint: enable=g-import-not-at-top
  dci.compute_importance_gbt = compute_importance_gbt
  downstream_task._compute_loss = compute_loss  # pylint: disable=protected-access


# After reproducibility.FIXES: the estimators are seeded where they are built.
FIXES = (
    FixInfo("parallel_metrics",
            ["evaluation/metrics/dci.py",
             "evaluation/metrics/downstream_task.py"],
            "one classifier per factor is fitted after the other on one "
            "core: DCI takes many minutes per model at study settings",
            install_parallel_metrics),
)
