"""Scoring any representation function with dlib's own metrics.

`score(representation_fn, dataset=..., metrics=[...])` checks everything it
can before any metric starts (metric names and configs, the dataset, the
function's answer on a first batch), then runs each metric through dlib's
`evaluate` (sbd_plugin/dlib_bridge/external_evaluation.py) with the study's
metric configs. With `output_dir` it writes what
`dlib_evaluate --output_dir <output_dir>/<metric>` writes, so
`dlib_aggregate_results` reads it, and skips metrics already finished there.

An output folder is:

  <output_dir>/model/results/json/external_config.json   the model's record
  <output_dir>/<metric>/results/aggregate/evaluation.json  dlib's results
  <output_dir>/<metric>/results/json/evaluation_results.json
  <output_dir>/<metric>/results/gin/evaluation.gin      the operative config

The record (name, file and SHA-256, runtime, dataset, seed, library
versions, machine) is copied by dlib into every metric's results, so each
`evaluation.json` carries it under `external_config.*`.
"""
import glob
import hashlib
import os
import shutil
import tempfile

from sbd_plugin import atomic
from sbd_plugin import safe_names
from sbd_plugin.scoring import representation as representation_lib

DEFAULT_METRICS = ("mig", "factor_vae", "dci")
MODEL_DIR = "model"
RECORD_STEP = "external"  # dlib names result files <step>_config.json.
# The identity of the model an output folder holds: a rerun into the folder
# must score the same model on the same data with the same seed.
_IDENTITY_KEYS = ("name", "sha256", "dataset", "dataset_bindings", "seed",
                  "input_layout")


class ScoringError(ValueError):
  """Scoring cannot start: a metric, config, dataset or folder is wrong."""


def metric_config_dir():
  """The study metric configs shipped with the plugin (gin_configs/metrics)."""
  import gin_configs  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(os.path.abspath(gin_configs.__file__)),
                      "metrics")


def available_metrics(config_dir=None):
  """Names of the metrics with a config `<name>.gin` in `config_dir`."""
  config_dir = config_dir or metric_config_dir()
  return sorted(os.path.basename(p)[:-len(".gin")]
                for p in glob.glob(os.path.join(config_dir, "*.gin")))


def metric_configs(metrics, config_dir=None):
  """The gin config of each metric, checked to exist.

  Args:
    metrics: Metric names (dlib's study names: mig, factor_vae, dci, ...).
    config_dir: Folder of `<metric>.gin` files (default: the study configs).

  Returns:
    List of (metric, config path).

  Raises:
    ScoringError: for an unknown or repeated name, naming the valid ones.
  """
  config_dir = config_dir or metric_config_dir()
  valid = available_metrics(config_dir)
  if not metrics:
    raise ScoringError("No metrics given; choose from %s." % ", ".join(valid))
  for metric in metrics:
    if metric not in valid:
      raise ScoringError("Unknown metric %r: %s has configs for %s." % (
          metric, config_dir, ", ".join(valid)))
  if len(set(metrics)) != len(metrics):
    raise ScoringError("Metrics %s name one twice." % list(metrics))
  return [(m, os.path.join(config_dir, m + ".gin")) for m in metrics]


def gin_literal(value):
  """A Python value as a gin literal (strings quoted)."""
  return repr(value)


def _dataset_bindings(dataset, dataset_bindings):
  return ["dataset.name = %s" % gin_literal(dataset)] + list(dataset_bindings)


def _metric_bindings(metric, dataset, dataset_bindings, seed, metric_bindings):
  """Bindings after a metric's config: dataset, seed, name, the user's."""
  return (_dataset_bindings(dataset, dataset_bindings) +
          ["evaluation.random_seed = %d" % seed,
           "evaluation.name = %s" % gin_literal(metric)] +
          list(metric_bindings))


def _check_gin(configs, dataset, dataset_bindings, seed, metric_bindings):
  """Parses every metric's config and bindings once, before any metric runs."""
  import gin  # pylint: disable=g-import-not-at-top
  # Registers dlib's metric configurables (@mig, @dci, ...), as dlib_evaluate.
  from disentanglement_lib.evaluation import evaluate  # pylint: disable=g-import-not-at-top,unused-import
  for metric, config in configs:
    gin.clear_config()
    try:
      gin.parse_config_files_and_bindings(
          [config], _metric_bindings(metric, dataset, dataset_bindings, seed,
                                     metric_bindings), finalize_config=False)
    except Exception as e:  # pylint: disable=broad-except
      raise ScoringError("The config of metric %s (%s) with the bindings %s "
                         "does not parse: %s" % (metric, config,
                                                 list(metric_bindings), e))
    finally:
      gin.clear_config()


def load_dataset(dataset, dataset_bindings=()):
  """Builds the dataset the metrics will use (the global gin config is reset)."""
  import gin  # pylint: disable=g-import-not-at-top
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    gin.parse_config(_dataset_bindings(dataset, dataset_bindings))
    return named_data.get_named_ground_truth_data()
  except ValueError as e:
    raise ScoringError(str(e))
  finally:
    gin.clear_config()


def file_sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def record_path(output_dir):
  """The model's record in an output folder."""
  return os.path.join(output_dir, MODEL_DIR, "results", "json",
                      RECORD_STEP + "_config.json")


def metric_dir(output_dir, metric):
  """Where a metric's results go: what `dlib_evaluate --output_dir` gets."""
  return os.path.join(output_dir, safe_names.folder_name(metric, "metric name"))


def metric_results(output_dir, metric):
  """dlib's results of a finished metric in an output folder, else None.

  Returns:
    The dict dlib's metric returned (plus `elapsed_time` and `uuid`), or None
    if the metric has not finished there (its aggregate does not parse).
  """
  step = metric_dir(output_dir, metric)
  if atomic.read_json(os.path.join(step, "results", "aggregate",
                                   "evaluation.json")) is None:
    return None
  return atomic.read_json(os.path.join(step, "results", "json",
                                       "evaluation_results.json"))


def _write_record(output_dir, record):
  """Writes the model's record; refuses a folder holding another model's."""
  path = record_path(output_dir)
  old = atomic.read_json(path)
  if old is not None:
    changed = [k for k in _IDENTITY_KEYS if old.get(k) != record.get(k)]
    if changed:
      raise ScoringError(
          "%s holds the scores of another model or setting (%s differ: %s "
          "there, %s now). Choose another output folder, or delete that one "
          "to replace its results." % (
              output_dir, ", ".join(changed),
              [old.get(k) for k in changed], [record.get(k) for k in changed]))
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_json(path, record, indent=1, sort_keys=True)


def _record(name, dataset, dataset_bindings, seed, extra):
  """The model's record: one flat dict, as dlib's result files hold."""
  from sbd_plugin import machine  # pylint: disable=g-import-not-at-top
  from sbd_plugin import versions  # pylint: disable=g-import-not-at-top
  record = {"name": name, "sha256": None, "path": None, "dataset": dataset,
            "dataset_bindings": list(dataset_bindings), "seed": seed,
            "input_layout": "nhwc", "runtime": "python function"}
  record.update(extra or {})
  # Flat keys: dlib's aggregation makes one column per key.
  for library, version in versions.library_versions().items():
    record["versions." + library] = version
  for key, value in machine.run_record().items():
    record["machine." + key] = value
  return record


def score(representation_fn, dataset, metrics=DEFAULT_METRICS, seed=0,
          metric_bindings=None, dataset_bindings=(), output_dir=None,
          batch_size=64, name="model", config_dir=None, record=None,
          log=None, configs=None):
  """Scores a representation function with dlib's metrics.

  Args:
    representation_fn: Function from a numpy batch [batch, height, width,
      channels] of float32 observations in [0, 1] (the dataset's
      `observation_shape`) to a numpy array [batch, dims] of floats: the mean
      of the representation. It is given at most `batch_size` images at once.
    dataset: dlib dataset name (`dataset.name`), e.g. "colored_sprites".
    metrics: Metric names; each runs with `<config_dir>/<metric>.gin`.
    seed: `evaluation.random_seed` of every metric.
    metric_bindings: Extra gin bindings applied after each metric's config,
      e.g. ["mig.num_train = 1000"].
    dataset_bindings: Gin bindings of the dataset's parameters.
    output_dir: If given, the results are written there as `dlib_evaluate`
      writes them (`<output_dir>/<metric>/results/...`) and metrics already
      finished there are not run again; else a temporary folder is used.
    batch_size: Most images given to `representation_fn` at once.
    name: The model's name in messages and in its record.
    config_dir: Folder of the metric configs (default gin_configs/metrics,
      dlib's study settings).
    record: Extra fields of the model's record (e.g. the file and its hash).
    log: Optional function taking a progress line.
    configs: Optional list of (metric, gin config path), instead of
      `metrics` and `config_dir` (a study's own configs).

  Returns:
    Dict from metric name to the dict dlib's metric returned (e.g.
    {"mig": {"discrete_mig": ..., "elapsed_time": ..., "uuid": ...}}).

  Raises:
    ScoringError: for a wrong metric, binding, dataset or output folder.
    sbd_plugin.scoring.representation.RepresentationError: if the function's
      answer on the first batch is not a finite [batch, dims] float array.
    Both before any metric starts.
  """
  # pylint: disable=g-import-not-at-top
  import sbd_plugin  # pylint: disable=unused-import
  from sbd_plugin.dlib_bridge import external_evaluation
  # pylint: enable=g-import-not-at-top
  log = log or (lambda line: None)
  metric_bindings = list(metric_bindings or [])
  dataset_bindings = list(dataset_bindings)
  configs = ([tuple(c) for c in configs] if configs is not None else
             metric_configs(list(metrics), config_dir))
  data = load_dataset(dataset, dataset_bindings)
  _check_gin(configs, dataset, dataset_bindings, seed, metric_bindings)
  checked = representation_lib.Checked(representation_fn, name, batch_size)
  dims = representation_lib.probe(checked, data, min(batch_size, 64))
  log("%s: %d-dimensional representation of %s observations %s" % (
      name, dims, dataset, list(data.observation_shape)))

  temporary = None
  if output_dir is None:
    temporary = tempfile.TemporaryDirectory(prefix="sbd_score_")
    output_dir = temporary.name
  try:
    full_record = _record(name, dataset, dataset_bindings, seed, record)
    full_record["dims"] = dims
    _write_record(output_dir, full_record)
    model_dir = os.path.join(output_dir, MODEL_DIR)
    scores = {}
    for metric, config in configs:
      done = metric_results(output_dir, metric)
      if done is not None:
        log("%s: finished before, kept (%s)" % (metric,
                                                metric_dir(output_dir, metric)))
        scores[metric] = done
        continue
      step = metric_dir(output_dir, metric)
      if os.path.exists(step):
        shutil.rmtree(step)  # Cut short before: redone, never trusted.
      log("%s: running (%s)" % (metric, config))
      external_evaluation.evaluate_representation(
          checked, model_dir, step, [config],
          _metric_bindings(metric, dataset, dataset_bindings, seed,
                           metric_bindings))
      scores[metric] = metric_results(output_dir, metric)
    return scores
  finally:
    if temporary is not None:
      temporary.cleanup()


def score_onnx(path, dataset, metrics=DEFAULT_METRICS, seed=0,
               metric_bindings=None, dataset_bindings=(), output_dir=None,
               batch_size=64, input_layout="nhwc", name=None, config_dir=None,
               log=None, configs=None):
  """Scores an ONNX encoder file with dlib's metrics (what `sbd_score` runs).

  The model's declared input and output are checked against the dataset
  before anything else (sbd_plugin.scoring.onnx_model); its first output is
  the representation. Other arguments as `score`.

  Args:
    path: The .onnx file.
    input_layout: "nhwc", or "nchw" for models exported from PyTorch (the
      observations are transposed before they reach the model).

  Returns:
    As `score`.
  """
  import onnxruntime  # pylint: disable=g-import-not-at-top
  from sbd_plugin.scoring import onnx_model  # pylint: disable=g-import-not-at-top
  name = name or os.path.basename(path)
  # Metric names first: a typo must not wait for the dataset.
  if configs is None:
    metric_configs(list(metrics), config_dir)
  data = load_dataset(dataset, dataset_bindings)
  model = onnx_model.OnnxModel(path, list(data.observation_shape),
                               input_layout, name)
  record = {"path": os.path.abspath(path), "sha256": file_sha256(path),
            "input_layout": input_layout,
            "runtime": "onnxruntime %s (%s)" % (onnxruntime.__version__,
                                                ", ".join(model.providers))}
  return score(model, dataset, metrics, seed, metric_bindings,
               dataset_bindings, output_dir, batch_size, name, config_dir,
               record, log, configs)


def load_function(spec, seed):
  """The representation function `module:function` returns for `seed`.

  Args:
    spec: "package.module:function"; function(seed) must return a
      representation function (see `score`).
    seed: The seed of the model to load.

  Raises:
    ScoringError: if the module or function cannot be found.
  """
  import importlib  # pylint: disable=g-import-not-at-top
  module_name, function_name = spec.split(":")
  try:
    factory = getattr(importlib.import_module(module_name), function_name)
  except (ImportError, AttributeError) as e:
    raise ScoringError("Cannot load external model %r: %s. It must be "
                       "'module:function' importable from the study's "
                       "Python path." % (spec, e))
  return factory(seed)
