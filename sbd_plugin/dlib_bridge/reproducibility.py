"""Same seed, same numbers: the fixes that make dlib 1.5 repeatable.

Found by training the same config twice and comparing checkpoints bit for bit
(see docs/reproducibility.md):

- dlib's layers (tf.compat.v1.layers on Keras 2.15) draw the seeds of their
  weight initialisers from Python's unseeded `random` module, so two runs with
  the same `model.random_seed` start from different weights. We seed Python's
  and numpy's global generators from `model.random_seed` when training starts.
- dlib's latent sampling and FactorVAE's code shuffling are stateful TF random
  ops: they restart their sequence in every new session, so a run resumed
  from a checkpoint replays step 0's noise. We draw them from stateless ops
  keyed by (graph seed, global step): step s gets the same noise whether or
  not the run was interrupted. Stateless ops also need no op seed, which
  TensorFlow's determinism mode demands of the TF-Hub export.
- TensorFlow's op determinism is on while a model trains
  (`SBD_PLUGIN_DETERMINISTIC=0` turns it off), so kernels with a
  nondeterministic implementation (on GPU mostly) use a deterministic one or
  fail loudly. Only while training: it also refuses random ops without a seed
  in graphs that have none, which dlib's own tests and tools build.
- scikit-learn estimators that dlib builds without a `random_state` (DCI's
  and the downstream tasks' gradient boosting, SAP's linear SVM, fairness)
  get one derived from the metric's own random state, and numpy's global
  generator is seeded from it while a metric runs.
"""
import contextlib
import os
import random
import threading

import numpy as np

from sbd_plugin.dlib_bridge.stack_fixes import FixInfo

ENV = "SBD_PLUGIN_DETERMINISTIC"
_SEEDS = threading.local()


def deterministic_ops_requested():
  """Whether TensorFlow's op determinism is on (default) or switched off."""
  return os.environ.get(ENV, "1") != "0"


# --- training: seeded generators, deterministic ops ------------------------------


@contextlib.contextmanager
def reproducible_training(random_seed):
  """Seeds the global generators and makes TF's ops deterministic meanwhile.

  Python's `random` seeds the weight initialisers (Keras draws their seeds
  from it); numpy's global generator is seeded too, for any code that uses it.

  Args:
    random_seed: dlib's `model.random_seed`.
  """
  from tensorflow.python.framework import config  # pylint: disable=g-import-not-at-top,g-direct-tensorflow-import
  if random_seed is not None:
    random.seed(random_seed)
    np.random.seed(random_seed % 2**32)
  was_deterministic = config.is_op_determinism_enabled()
  if deterministic_ops_requested():
    config.enable_op_determinism()
  try:
    yield
  finally:
    if not was_deterministic:
      config.disable_op_determinism()


def _seeding(train_fn):
  """dlib's `train` body, inside `reproducible_training`."""

  def train(model_dir, overwrite=False, model=None, training_steps=None,
            random_seed=None, *args, **kwargs):
    with reproducible_training(random_seed):
      return train_fn(model_dir, overwrite, model, training_steps,
                      random_seed, *args, **kwargs)

  return train


def install_seeded_training():
  from disentanglement_lib.methods.unsupervised import train  # pylint: disable=g-import-not-at-top
  from sbd_plugin.dlib_bridge import gin_wrappers  # pylint: disable=g-import-not-at-top
  gin_wrappers.wrap_inner(train.train, _seeding, "sbd_seeded")


# --- stateless sampling ------------------------------------------------------------


def _step_seed(salt):
  """A stateless-op seed: [graph seed and salt, global step]."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  graph_seed = tf.get_default_graph().seed or 0
  step = tf.train.get_global_step()
  # No global step (the TF-Hub export graph): one fixed draw.
  step = tf.constant(0, tf.int64) if step is None else tf.cast(step, tf.int64)
  base = (int(graph_seed) * 1000003 + salt) % (2**31 - 1)
  return tf.stack([tf.constant(base, tf.int64), step])


def sample_from_latent_distribution(self, z_mean, z_logvar):
  """GaussianEncoderModel's reparameterised sample, from stateless noise."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  del self
  noise = tf.random.stateless_normal(tf.shape(z_mean), seed=_step_seed(0))
  return tf.add(z_mean, tf.exp(z_logvar / 2) * noise,
                name="sampled_latent_variable")


def shuffle_codes(z):
  """FactorVAE's per-dimension shuffle of a batch of codes, stateless."""
  import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top
  columns = []
  for i in range(z.get_shape()[1]):
    keys = tf.random.stateless_uniform(tf.shape(z)[:1], seed=_step_seed(i + 1))
    columns.append(tf.gather(z[:, i], tf.argsort(keys)))
  return tf.stack(columns, 1, name="latent_shuffled")


def install_stateless_sampling():
  from disentanglement_lib.methods.unsupervised import gaussian_encoder_model  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.methods.unsupervised import vae  # pylint: disable=g-import-not-at-top
  model_class = gaussian_encoder_model.GaussianEncoderModel
  model_class.sample_from_latent_distribution = sample_from_latent_distribution
  vae.shuffle_codes = shuffle_codes


# --- seeded scikit-learn estimators --------------------------------------------------


@contextlib.contextmanager
def estimator_seeds(random_state):
  """Seeds the unseeded estimators that dlib builds inside this block.

  The k-th estimator built gets `random_state = base + k`, with `base` drawn
  from a copy of `random_state`, which is left untouched: the metric's own
  sampling is the same as in stock dlib. numpy's global generator (which
  dlib's strong downstream task draws from) is seeded with `base` meanwhile
  and restored afterwards.

  Args:
    random_state: np.random.RandomState of the metric, or None (base 0).
  """
  base = 0
  if random_state is not None:
    copy = np.random.RandomState()
    copy.set_state(random_state.get_state())
    base = int(copy.randint(2**31 - 2**16))
  previous = getattr(_SEEDS, "state", None)
  global_state = np.random.get_state()
  _SEEDS.state = [base, 0]
  np.random.seed(base)
  try:
    yield
  finally:
    _SEEDS.state = previous
    np.random.set_state(global_state)


def next_estimator_seed():
  """The seed of the next estimator built in the current `estimator_seeds`."""
  state = getattr(_SEEDS, "state", None)
  if state is None:
    state = _SEEDS.state = [0, 0]
  state[1] += 1
  return state[0] + state[1] - 1


class _SeededSklearnModule(object):
  """A scikit-learn module as dlib sees it: its estimators always seeded."""

  def __init__(self, module):
    self._module = module

  def __getattr__(self, name):
    value = getattr(self._module, name)
    if isinstance(value, type) and "random_state" in getattr(
        value, "_parameter_constraints", {}):
      def build(*args, **kwargs):
        kwargs.setdefault("random_state", next_estimator_seed())
        return value(*args, **kwargs)
      build.__name__ = name
      return build
    return value


def _seeding_metric(compute_fn):
  """A metric's compute function, run inside `estimator_seeds`."""

  def compute(ground_truth_data, representation_function, random_state,
              *args, **kwargs):
    with estimator_seeds(random_state):
      return compute_fn(ground_truth_data, representation_function,
                        random_state, *args, **kwargs)

  return compute


def install_seeded_estimators():
  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.evaluation.metrics import dci
  from disentanglement_lib.evaluation.metrics import downstream_task
  from disentanglement_lib.evaluation.metrics import fairness
  from disentanglement_lib.evaluation.metrics import reduced_downstream_task
  from disentanglement_lib.evaluation.metrics import sap_score
  from disentanglement_lib.evaluation.metrics import strong_downstream_task
  from disentanglement_lib.evaluation.metrics import utils
  from sbd_plugin.dlib_bridge import gin_wrappers
  # pylint: enable=g-import-not-at-top
  for module, attribute in ((dci, "ensemble"), (utils, "ensemble"),
                            (sap_score, "svm")):
    if not isinstance(getattr(module, attribute), _SeededSklearnModule):
      setattr(module, attribute,
              _SeededSklearnModule(getattr(module, attribute)))
  for wrapper in (dci.compute_dci, sap_score.compute_sap,
                  downstream_task.compute_downstream_task,
                  fairness.compute_fairness,
                  reduced_downstream_task.compute_reduced_downstream_task,
                  strong_downstream_task.compute_strong_downstream_task):
    gin_wrappers.wrap_inner(wrapper, _seeding_metric, "sbd_seeded")


# Applied in this order, after the stack fixes (see `dlib_bridge.activate`).
FIXES = (
    FixInfo("reproducible_training", ["methods/unsupervised/train.py"],
            "Keras initialisers draw seeds from Python's unseeded `random`; "
            "some TF kernels (mostly GPU) are nondeterministic by default",
            install_seeded_training),
    FixInfo("stateless_sampling",
            ["methods/unsupervised/gaussian_encoder_model.py",
             "methods/unsupervised/vae.py"],
            "stateful random ops replay step 0's noise after a resume and "
            "need op seeds under TF's determinism", install_stateless_sampling),
    FixInfo("seeded_estimators",
            ["evaluation/metrics/dci.py", "evaluation/metrics/sap_score.py",
             "evaluation/metrics/utils.py",
             "evaluation/metrics/downstream_task.py",
             "evaluation/metrics/fairness.py",
             "evaluation/metrics/reduced_downstream_task.py",
             "evaluation/metrics/strong_downstream_task.py"],
            "GradientBoostingClassifier and LinearSVC are built without a "
            "random_state; strong_downstream_task draws from numpy's global "
            "generator", install_seeded_estimators),
)
