"""Study specification and run planning.

A study is a small TOML file (see gin_configs/studies/): decoders x models x
datasets x seeds x a hyper-parameter sweep. Each combination is one run of
dlib's train -> postprocess (mean) -> evaluate pipeline, executed by
`evaluation.worker` in its own process and written in dlib's directory layout
under `<output_dir>/runs/<run_id>/`.
"""
import collections
import dataclasses
import itertools
import json
import os
import re
import tomllib
from typing import Dict, List, Tuple

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DONE_FILE = "DONE.json"
ERROR_FILE = "error.log"
# Defaults of the study file's `metrics.names` and `baseline`.
METRICS = ("mig", "factor_vae", "dci")
BASELINE = "deconv"
_KNOWN_KEYS = {"name", "description", "datasets", "models", "decoders",
               "baseline", "seeds", "sweep", "train", "postprocess",
               "metrics", "dataset_bindings", "decoder_bindings", "figures"}


@dataclasses.dataclass(frozen=True)
class Run:
  """One trained model of a study and everything needed to redo it."""
  run_id: str
  dataset: str
  model: str
  decoder: str
  seed: int
  sweep: Tuple[Tuple[str, object], ...]
  model_configs: Tuple[str, ...]
  train_bindings: Tuple[str, ...]
  dataset_bindings: Tuple[str, ...]
  postprocess_config: str
  metric_configs: Tuple[Tuple[str, str], ...]
  metric_bindings: Tuple[str, ...]

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, text):
    d = json.loads(text)
    d["sweep"] = tuple(tuple(kv) for kv in d["sweep"])
    d["metric_configs"] = tuple(tuple(kv) for kv in d["metric_configs"])
    for key in ("model_configs", "train_bindings", "dataset_bindings",
                "metric_bindings"):
      d[key] = tuple(d[key])
    return cls(**d)


@dataclasses.dataclass
class Study:
  """A parsed study file."""
  name: str
  description: str
  runs: List[Run]
  figures: Dict[str, object]
  source: str
  baseline: str = BASELINE  # the decoder every other one is compared with
  metrics: Tuple[str, ...] = METRICS  # study metric names, in table order


class StudyError(ValueError):
  """A study file that cannot be run, with what to change."""


def _resolve(path, base):
  """Resolves a config path relative to the study file, then the repo."""
  for root in (base, REPO_ROOT):
    candidate = os.path.join(root, path)
    if os.path.exists(candidate):
      return os.path.abspath(candidate)
  raise StudyError("Config file %r not found (looked next to the study file "
                   "and in %s)." % (path, REPO_ROOT))


def _format_value(value):
  if isinstance(value, str):
    return value if value.startswith("@") else "'%s'" % value
  return repr(value)


def _slug(value):
  return re.sub(r"[^A-Za-z0-9.]+", "", str(value))


def make_run_id(dataset, model, decoder, sweep, seed):
  """Returns a readable, unique, filesystem-safe id for one run."""
  parts = [dataset, model, decoder]
  parts += ["%s%s" % (key.split(".")[-1], _slug(v)) for key, v in sweep]
  parts.append("seed%d" % seed)
  return "-".join(parts)


def _as_list(spec, key, kind):
  value = spec.get(key)
  if not isinstance(value, list) or not value or not all(
      isinstance(v, kind) for v in value):
    raise StudyError("Study key %r must be a non-empty list of %s, got %r." %
                     (key, kind.__name__, value))
  return value


def parse_study(path):
  """Parses and validates a study file.

  Args:
    path: Path to the TOML study file.

  Returns:
    Study with its runs planned in a fixed order.

  Raises:
    StudyError: if the file is malformed; the message says what to fix.
  """
  try:
    with open(path, "rb") as f:
      spec = tomllib.load(f)
  except (OSError, tomllib.TOMLDecodeError) as e:
    raise StudyError("Cannot read study file %s: %s" % (path, e)) from e
  unknown = set(spec) - _KNOWN_KEYS
  if unknown:
    raise StudyError("Unknown study keys %s in %s; valid keys: %s." % (
        sorted(unknown), path, sorted(_KNOWN_KEYS)))
  base = os.path.dirname(os.path.abspath(path))
  datasets = _as_list(spec, "datasets", str)
  models = _as_list(spec, "models", str)
  decoders = _as_list(spec, "decoders", str)
  seeds = _as_list(spec, "seeds", int)
  sweep = spec.get("sweep", {})
  sweep_keys = sorted(sweep)
  for key in sweep_keys:
    if not isinstance(sweep[key], list) or not sweep[key]:
      raise StudyError("sweep.%s must be a non-empty list." % key)
  train = spec.get("train", {})
  metrics = spec.get("metrics", {})
  metric_names = metrics.get("names", list(METRICS))
  metric_configs = tuple(
      (m, _resolve(metrics.get("configs", {}).get(
          m, "gin_configs/metrics/%s.gin" % m), base)) for m in metric_names)
  postprocess_config = _resolve(spec.get("postprocess", {}).get(
      "config", "gin_configs/postprocess/mean.gin"), base)
  dataset_bindings = spec.get("dataset_bindings", {})
  decoder_bindings = spec.get("decoder_bindings", {})
  runs = []
  for dataset, model, decoder in itertools.product(datasets, models,
                                                   decoders):
    configs = [_resolve("gin_configs/%s_%s.gin" % (decoder, model), base)]
    configs += [_resolve(c, base) for c in train.get("configs", [])]
    for values in itertools.product(*[sweep[k] for k in sweep_keys]):
      sweep_items = tuple(zip(sweep_keys, values))
      for seed in seeds:
        run_id = make_run_id(dataset, model, decoder, sweep_items, seed)
        bindings = list(train.get("bindings", []))
        bindings += list(decoder_bindings.get(decoder, []))
        bindings += ["%s = %s" % (k, _format_value(v)) for k, v in sweep_items]
        bindings += ["dataset.name = '%s'" % dataset,
                     "model.random_seed = %d" % seed,
                     # Lets dlib's aggregated results name the run.
                     "model.name = '%s'" % run_id]
        runs.append(Run(
            run_id=run_id, dataset=dataset, model=model, decoder=decoder,
            seed=seed, sweep=sweep_items, model_configs=tuple(configs),
            train_bindings=tuple(bindings),
            dataset_bindings=tuple(dataset_bindings.get(dataset, [])),
            postprocess_config=postprocess_config,
            metric_configs=metric_configs,
            metric_bindings=tuple(metrics.get("bindings", []))))
  repeated = sorted(run_id for run_id, count in collections.Counter(
      run.run_id for run in runs).items() if count > 1)
  if repeated:
    raise StudyError(
        "Study %s plans several runs with the same id (%s): make seeds and "
        "sweep values distinct (ids keep only letters, digits and dots of "
        "each value)." % (path, ", ".join(repeated)))
  return Study(name=spec.get("name", os.path.splitext(
      os.path.basename(path))[0]), description=spec.get("description", ""),
               runs=runs, figures=spec.get("figures", {}),
               source=os.path.abspath(path),
               baseline=spec.get("baseline", BASELINE),
               metrics=tuple(metric_names))


def run_dir(output_dir, run):
  return os.path.join(output_dir, "runs", run.run_id)


def is_finished(output_dir, run):
  """True only once the worker has written the run's completion marker."""
  return os.path.exists(os.path.join(run_dir(output_dir, run), DONE_FILE))
