"""Study specification: parsing, validation and run planning.

A study is a small TOML file (see gin_configs/studies/): decoders x models x
datasets x seeds x a hyper-parameter sweep. Each combination is one run of
dlib's train -> postprocess (mean) -> evaluate pipeline, executed by
`evaluation.worker` in its own process and written in dlib's directory layout
under `<output_dir>/runs/<run_id>/` (see `evaluation.layout`).

Every key of the file is checked against `SCHEMA`: a misspelt key, a value of
the wrong type, a name that is not a plain identifier or an empty list is an
error that names the field and says what to write instead. Names and sweep
values reach gin only as literals (`gin_literal`), so no value can add a
binding; run ids are built from validated parts and can never hold a path
separator or `..`.
"""
import collections
import dataclasses
import difflib
import itertools
import json
import os
import re
import tomllib
from typing import Dict, List, Tuple

from evaluation import layout
from evaluation import metrics as metrics_lib
from evaluation import slurm_options
from sbd_plugin import atomic

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Defaults of the study file's `metrics.names`, `metrics.primary` and
# `baseline`.
METRICS = metrics_lib.DEFAULT_NAMES
PRIMARY_METRICS = metrics_lib.DEFAULT_PRIMARY
BASELINE = "deconv"
# Study keys that become bindings of the runner's checkpointing (the defaults
# live in gin: sbd_plugin.dlib_bridge.resumable_train.checkpoint_options).
_CHECKPOINT_BINDINGS = {"checkpoint_every_steps": "checkpoints.every_steps",
                        "checkpoint_every_seconds": "checkpoints.every_seconds"}

# A dataset, model or decoder name: a plain identifier.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# A gin parameter: [scope/...]configurable.parameter.
_GIN_PARAMETER = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*$")
# A gin reference, for sweep values such as "@spatial_broadcast_decoder".
_GIN_REFERENCE = re.compile(r"^@[A-Za-z_][A-Za-z0-9_./]*(\(\))?$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MAX_SEED = 2**31 - 1
# A SLURM partition, or a comma-separated list of them (written into sbatch).
SLURM_PARTITION = slurm_options.PARTITION

# What a study may ask of the executors: each key of its [resources] table is
# a field of evaluation.executors.base.Settings and has a flag of `sbd_study
# run` that overrides it. Key -> (type check name, description, flag), in
# the order of `sbd_study run --help`.
RESOURCES = {
    "gpus_per_run": ("non_negative_number",
                     "GPUs per training (a fraction shares a GPU)",
                     "--gpus-per-run"),
    "cpus_per_run": ("positive_int", "CPUs per training or evaluation",
                     "--cpus-per-run"),
    "retries": ("non_negative_int", "retries of a failed task", "--retries"),
    "partition": ("partition", "SLURM partition of the runs' jobs",
                  "--slurm-partition"),
    "time_minutes": ("positive_int", "time limit of each SLURM job",
                     "--slurm-time"),
    "account": ("slurm_name", "SLURM account of the jobs (--account)",
                "--slurm-account"),
    "qos": ("slurm_name", "SLURM quality of service (--qos)", "--slurm-qos"),
    "mem": ("slurm_mem", "memory of each SLURM job (--mem), e.g. \"32G\"",
            "--slurm-mem"),
    "constraint": ("slurm_constraint",
                   "node features of the jobs (--constraint)",
                   "--slurm-constraint"),
    "setup": ("shell_lines", "shell lines each SLURM job runs before its "
              "tasks, e.g. [\"module load cuda\"]", "--slurm-setup"),
    "sbatch": ("sbatch_options", "any other sbatch option: name -> value, "
               "e.g. reservation = \"paper\"", "--slurm-option"),
    "portable": ("bool", "portable mode: the same bytes on any x86-64 CPU "
                 "with AVX, slower (sbd_plugin.portable; "
                 "docs/reproducibility.md)", "--portable"),
}

# The study file's keys: key -> (type check name, description). Tables map to
# a nested dict; "{}" marks a table whose keys are names given elsewhere.
SCHEMA = {
    "name": ("str", "the study's name"),
    "description": ("str", "free text for the report"),
    "datasets": ("names", "dataset names (dlib's `dataset.name`)"),
    "models": ("names", "model configs: gin_configs/<decoder>_<model>.gin"),
    "decoders": ("names", "decoders: gin_configs/<decoder>_<model>.gin"),
    "baseline": ("name", "the decoder every other decoder is compared with"),
    "seeds": ("seeds", "model.random_seed values"),
    "sweep": ("sweep", "gin parameter -> list of values"),
    "train": {
        "configs": ("strs", "extra gin config files for training"),
        "bindings": ("bindings", "extra gin bindings for training"),
        "checkpoint_every_steps": ("positive_int", "steps between checkpoints"),
        "checkpoint_every_seconds": ("positive_int",
                                     "seconds between checkpoints"),
    },
    "postprocess": {"config": ("str", "dlib postprocessing gin config")},
    "metrics": {
        "names": ("names", "metrics to compute, in table order"),
        "primary": ("names", "the table rows of the study's main claim "
                    "(Holm correction within them; the rest are "
                    "secondary)"),
        "configs": ("{}", "metric name -> gin config file"),
        "bindings": ("bindings", "gin bindings for every metric"),
    },
    "dataset_bindings": ("{}", "dataset name -> gin bindings for every step"),
    "external": ("external", "models trained elsewhere, scored beside the "
                 "decoders: [[external]] tables (keys: %s)" % ", ".join(
                     "name files function seeds model dataset "
                     "input_layout".split())),
    "decoder_bindings": ("{}", "decoder name -> extra training bindings"),
    "model_bindings": ("{}", "model name -> extra training bindings (after "
                       "`train.bindings`, e.g. FactorVAE's step count)"),
    "figures": {
        "traversals": ("bool", "draw latent traversals"),
        "latent_geometry": ("pair", "two factors (names or indices)"),
        "heldout": ("pair", "[training dataset, held-out dataset]"),
    },
    # Defaults and use: evaluation.executors.base.Settings.
    "resources": {key: (check, description)
                  for key, (check, description, _) in RESOURCES.items()},
}


# One [[external]] table: a model trained elsewhere (sbd_plugin.scoring).
EXTERNAL_SCHEMA = {
    "name": ("name", "its label in tables and figures (a decoder's place)"),
    "files": ("strs", "one ONNX file per seed, relative to the study file"),
    "function": ("str", "'module:function'; function(seed) returns a "
                 "representation function (NHWC float32 -> [batch, dims])"),
    "seeds": ("seeds", "the seed of each file (default 0, 1, ...)"),
    "model": ("name", "the study model whose table it joins (default: the "
              "only one)"),
    "dataset": ("name", "the dataset it was trained on (default: the only "
                "one)"),
    "input_layout": ("str", "nhwc (default) or nchw (PyTorch exports)"),
}
_MODULE_FUNCTION = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


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
  # A model trained elsewhere: (("kind", "onnx"|"function"), ("source",
  # path or "module:function"), ("input_layout", ...)); empty for trained runs.
  external: Tuple[Tuple[str, str], ...] = ()

  def to_json(self):
    return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

  @classmethod
  def from_json(cls, text):
    d = json.loads(text)
    d["sweep"] = tuple(tuple(kv) for kv in d["sweep"])
    d["metric_configs"] = tuple(tuple(kv) for kv in d["metric_configs"])
    d["external"] = tuple(tuple(kv) for kv in d.get("external", ()))
    for key in ("model_configs", "train_bindings", "dataset_bindings",
                "metric_bindings"):
      d[key] = tuple(d[key])
    run = cls(**d)
    check_run_id(run.run_id)
    for metric, _ in run.metric_configs:
      # Each names a folder the worker may remove: never a path.
      if not isinstance(metric, str) or not _NAME.fullmatch(metric):
        raise StudyError(
            "Run %s: metric name %r in its run.json is not a plain name "
            "(a letter, then letters, digits or '_'). Rerun `sbd_study run` "
            "with the study file: it rewrites run.json." % (run.run_id, metric))
    return run


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
  primary_metrics: Tuple[str, ...] = PRIMARY_METRICS
  # The [resources] table as written (keys of RESOURCES).
  resources: Dict[str, object] = dataclasses.field(default_factory=dict)
  # What evaluation.preflight checks before launch: ("file" or "binding",
  # the study field it came from, the path or binding text) ...
  gin_sources: Tuple[Tuple[str, str, str], ...] = ()
  # ... and (study field, name) of every dataset name the study uses.
  dataset_names: Tuple[Tuple[str, str], ...] = ()
  # Names of the [[external]] models (no trained model folder to draw from).
  external_names: Tuple[str, ...] = ()


class StudyError(ValueError):
  """A study file (or output folder) that cannot be used, with what to change."""


# --- Values ---------------------------------------------------------------------


def gin_literal(value):
  """Returns `value` as gin text that can only ever be one value.

  Strings become quoted Python literals (a quote or newline inside stays
  inside the string), except validated references such as "@my_decoder".

  Args:
    value: str, int, float or bool.

  Returns:
    String to put on the right of a gin binding.
  """
  if isinstance(value, str) and _GIN_REFERENCE.match(value):
    return value
  if isinstance(value, (str, bool, int, float)):
    return repr(value)
  raise StudyError("Cannot bind %r: only strings, numbers and booleans." %
                   (value,))


def check_run_id(run_id):
  """Raises StudyError unless `run_id` is a single safe folder name."""
  if not _RUN_ID.match(run_id) or ".." in run_id:
    raise StudyError("Run id %r is not a plain folder name (letters, digits, "
                     "'_', '-', '.', no '..')." % run_id)
  return run_id


def _slug(value):
  # Keeps letters, digits and single dots: 1.0 -> "1.0", "../x" -> ".x".
  return re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9.]+", "", str(value)))


def make_run_id(dataset, model, decoder, sweep, seed):
  """Returns a readable, unique, filesystem-safe id for one run."""
  parts = [dataset, model, decoder]
  parts += ["%s%s" % (key.split(".")[-1], _slug(v)) for key, v in sweep]
  parts.append("seed%d" % seed)
  return check_run_id("-".join(parts))


# --- Validation -------------------------------------------------------------------


def _fail(field, message, value):
  raise StudyError("Study field `%s`: %s (got %r)." % (field, message, value))


def _check_name(field, value):
  if not isinstance(value, str) or not _NAME.match(value):
    _fail(field, "must be a plain name: a letter, then letters, digits or "
          "'_' (no '/', '.', quotes or spaces)", value)


def _check_list(field, value, check_item, what):
  if not isinstance(value, list):
    _fail(field, "must be a list of %s, e.g. [...]" % what, value)
  if not value:
    _fail(field, "must not be empty", value)
  for i, item in enumerate(value):
    check_item("%s[%d]" % (field, i), item)
  duplicates = sorted({repr(v) for v in value if value.count(v) > 1})
  if duplicates:
    _fail(field, "lists %s more than once" % ", ".join(duplicates), value)


def _check_str(field, value):
  if not isinstance(value, str):
    _fail(field, "must be a string in quotes", value)


def _check_binding(field, value):
  _check_str(field, value)
  if "\n" in value or "\r" in value:
    _fail(field, "must be one gin binding per list item (no line breaks)",
          value)


def _check_seed(field, value):
  # TOML booleans are not seeds, even though Python's bool is an int.
  if isinstance(value, bool) or not isinstance(value, int) or not (
      0 <= value <= _MAX_SEED):
    _fail(field, "must be a whole number from 0 to %d" % _MAX_SEED, value)


def _check_scalar(field, value):
  if isinstance(value, str):
    if value.startswith("@") and not _GIN_REFERENCE.match(value):
      _fail(field, "is not a valid gin reference like \"@my_decoder\"", value)
  elif not isinstance(value, (bool, int, float)):
    _fail(field, "must hold strings, numbers or booleans", value)


def _slurm(field, value, check):
  problem = check(value)
  if problem:
    _fail(field, problem, value)


def _check_sbatch(field, value):
  if not isinstance(value, dict):
    _fail(field, "must be a table of sbatch option -> value, e.g. "
          "[resources.sbatch] with reservation = \"paper\"", value)
  for name, item in value.items():
    problem = slurm_options.check_option(name, item)
    if problem:
      _fail("%s.%s" % (field, name), problem, item)


def _check_external(field, value):
  """Checks the [[external]] tables (EXTERNAL_SCHEMA), each on its own."""
  if not isinstance(value, list) or not value:
    _fail(field, "must be one or more [[external]] tables", value)
  for i, entry in enumerate(value):
    where = "%s[%d]" % (field, i)
    _check_table(where, entry, EXTERNAL_SCHEMA)
    if "name" not in entry:
      _fail(where, "needs a `name`", entry)
    if ("files" in entry) == ("function" in entry):
      _fail(where, "needs exactly one of `files` (ONNX, one per seed) and "
            "`function` ('module:function')", sorted(entry))
    if "function" in entry and not _MODULE_FUNCTION.match(entry["function"]):
      _fail(where + ".function", "must be 'module:function', e.g. "
            "\"my_models.torch_vae:representation\"", entry["function"])
    if "function" in entry and "seeds" not in entry:
      _fail(where, "with `function`, list the `seeds` it is called with",
            sorted(entry))
    if "files" in entry and len(entry.get("seeds", entry["files"])) != len(
        entry["files"]):
      _fail(where + ".seeds", "must give one seed per file (%d files)" %
            len(entry["files"]), entry["seeds"])
    if entry.get("input_layout", "nhwc") not in ("nhwc", "nchw"):
      _fail(where + ".input_layout", "must be \"nhwc\" or \"nchw\"",
            entry["input_layout"])


_CHECKS = {
    "str": _check_str,
    "name": _check_name,
    "names": lambda f, v: _check_list(f, v, _check_name, "plain names"),
    "strs": lambda f, v: _check_list(f, v, _check_str, "strings"),
    "bindings": lambda f, v: _check_list(f, v, _check_binding,
                                         "gin binding strings"),
    "seeds": lambda f, v: _check_list(f, v, _check_seed, "whole numbers"),
    "external": lambda f, v: _check_external(f, v),
    "bool": lambda f, v: isinstance(v, bool) or _fail(
        f, "must be true or false", v),
    "positive_int": lambda f, v: (
        (not isinstance(v, bool) and isinstance(v, int) and v >= 1) or _fail(
            f, "must be a whole number >= 1", v)),
    "non_negative_int": lambda f, v: (
        (not isinstance(v, bool) and isinstance(v, int) and v >= 0) or _fail(
            f, "must be a whole number >= 0", v)),
    "non_negative_number": lambda f, v: (
        (not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0)
        or _fail(f, "must be a number >= 0, e.g. 0.25", v)),
    "partition": lambda f, v: _slurm(f, v, slurm_options.check_partition),
    "slurm_name": lambda f, v: _slurm(f, v, slurm_options.check_name),
    "slurm_mem": lambda f, v: _slurm(f, v, slurm_options.check_mem),
    "slurm_constraint": lambda f, v: _slurm(f, v,
                                            slurm_options.check_constraint),
    "shell_lines": lambda f, v: _check_list(
        f, v, lambda g, w: _slurm(g, w, slurm_options.check_line),
        "shell lines"),
    "sbatch_options": lambda f, v: _check_sbatch(f, v),
    "pair": lambda f, v: (
        (isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, (str, int)) and not isinstance(x, bool)
            for x in v)) or _fail(f, "must be a list of two names or "
                                  "indices", v)),
}


def _check_table(field, value, schema):
  """Checks a TOML table against `schema` (dict key -> spec or sub-dict)."""
  if not isinstance(value, dict):
    _fail(field or "(file)", "must be a table ([%s] section)" % field, value)
  prefix = field + "." if field else ""
  for key in value:
    if key not in schema:
      close = difflib.get_close_matches(key, list(schema), n=1)
      raise StudyError(
          "Unknown study key `%s%s`%s. Valid keys%s: %s." % (
              prefix, key, " (did you mean `%s%s`?)" % (prefix, close[0])
              if close else "", " of [%s]" % field if field else "",
              ", ".join(sorted(schema))))
  for key, spec in schema.items():
    if key not in value:
      continue
    if isinstance(spec, dict):
      _check_table(prefix + key, value[key], spec)
    elif spec[0] == "{}":
      _check_named_table(prefix + key, value[key])
    elif spec[0] == "sweep":
      _check_sweep(prefix + key, value[key])
    else:
      _CHECKS[spec[0]](prefix + key, value[key])


def _check_named_table(field, value):
  if not isinstance(value, dict):
    _fail(field, "must be a table of name -> value", value)
  for key, item in value.items():
    _check_name("%s key" % field, key)
    if field == "metrics.configs":
      _check_str("%s.%s" % (field, key), item)
    else:
      _CHECKS["bindings"]("%s.%s" % (field, key), item)


def _check_sweep(field, value):
  if not isinstance(value, dict):
    _fail(field, "must be a table of gin parameter -> list of values", value)
  for key, values in value.items():
    if not _GIN_PARAMETER.match(key):
      _fail(field, "key %r is not a gin parameter like \"vae.beta\"" % key,
            key)
    _check_list("%s.\"%s\"" % (field, key), values, _check_scalar, "values")


def _with_suggestion(name, valid):
  """'name' quoted, with "(did you mean 'x'?)" if one valid name is close."""
  close = difflib.get_close_matches(name, list(valid), n=1)
  return "%r%s" % (name, " (did you mean %r?)" % close[0] if close else "")


def _check_references(spec):
  """Cross-field checks: tables keyed by names must name listed ones."""
  for field, listed in (("dataset_bindings", "datasets"),
                        ("decoder_bindings", "decoders"),
                        ("model_bindings", "models"),
                        ("metrics.configs", "metrics.names")):
    table = spec
    for part in field.split("."):
      table = table.get(part, {})
    names = spec.get(listed) if "." not in listed else spec.get(
        "metrics", {}).get("names", list(METRICS))
    for key in table:
      if key not in names:
        raise StudyError("Study field `%s` names %r, which is not in `%s` "
                         "(%s)." % (field, key, listed, ", ".join(names)))
  metrics = spec.get("metrics", {})
  names = metrics.get("names", list(METRICS))
  unknown = [name for name in names if name not in metrics_lib.METRICS]
  if unknown:
    raise StudyError("Study field `metrics.names` lists %s, which %s not "
                     "one of dlib's metrics: %s." % (
                         ", ".join(_with_suggestion(n, metrics_lib.METRICS)
                                   for n in unknown),
                         "is" if len(unknown) == 1 else "are",
                         ", ".join(metrics_lib.METRICS)))
  labels = metrics_lib.labels(names)
  for label in metrics.get("primary", []):
    if label not in labels:
      raise StudyError("Study field `metrics.primary` lists %r, which is not "
                       "a table row of the study's metrics (%s)." % (
                           label, ", ".join(labels)))
  external = [e["name"] for e in spec.get("external", [])]
  for i, entry in enumerate(spec.get("external", [])):
    if entry["name"] in spec["decoders"] or external.count(entry["name"]) > 1:
      raise StudyError("Study field `external[%d].name` is %r, which is "
                       "already a decoder or another external model's name."
                       % (i, entry["name"]))
    for key, listed in (("model", "models"), ("dataset", "datasets")):
      if key in entry and entry[key] not in spec[listed]:
        raise StudyError("Study field `external[%d].%s` is %r, which is not "
                         "in `%s` (%s)." % (i, key, entry[key], listed,
                                            ", ".join(spec[listed])))
      if key not in entry and len(spec[listed]) > 1:
        raise StudyError("Study field `external[%d]` needs `%s`: the study "
                         "has several %s (%s)." % (i, key, listed,
                                                   ", ".join(spec[listed])))
  baseline = spec.get("baseline")
  if baseline is not None and baseline not in list(spec["decoders"]) + external:
    raise StudyError("Study field `baseline` is %r, which is not in "
                     "`decoders` (%s) or an external model." % (
                         baseline, ", ".join(spec["decoders"])))


def validate(spec):
  """Checks a parsed study file; raises StudyError naming the bad field."""
  _check_table("", spec, SCHEMA)
  for key in ("datasets", "models", "decoders", "seeds"):
    if key not in spec:
      raise StudyError("Study field `%s` is missing: add %s = [...] (%s)." % (
          key, key, SCHEMA[key][1]))
  _check_references(spec)


def _find(path, base):
  """A config path relative to the study file, then the repo; None if absent."""
  for root in (base, REPO_ROOT):
    candidate = os.path.join(root, path)
    if os.path.isfile(candidate):
      return os.path.abspath(candidate)
  return None


class _Plan(object):
  """What planning found: config paths, gin sources and problems.

  Every config file and binding is recorded with the study field it came
  from, for `evaluation.preflight` to check against gin's configurables.
  """

  def __init__(self, base):
    self.base = base
    self.problems = []
    self.sources = {}  # (kind, text) -> where; kind "file" or "binding"

  def config(self, path, where, hint=""):
    """The absolute path of config `path` (as given if missing: a problem)."""
    found = _find(path, self.base)
    if found is None:
      problem = ("%s: config file %r not found (looked next to the study "
                 "file and in %s)%s." % (where, path, REPO_ROOT, hint))
      if problem not in self.problems:
        self.problems.append(problem)
      return path
    self.sources.setdefault(("file", found), where)
    return found

  def bindings(self, where, bindings):
    for i, binding in enumerate(bindings):
      self.sources.setdefault(("binding", binding), "%s[%d]" % (where, i))


class StudyProblems(StudyError):
  """Problems found while planning; `study` is planned as far as possible."""

  def __init__(self, message, problems, study):
    super(StudyProblems, self).__init__(message)
    self.problems = problems
    self.study = study


def problems_text(path, problems):
  """One message listing every problem of the study file at `path`."""
  return "%s cannot run, %d problem%s:\n%s" % (
      path, len(problems), "" if len(problems) == 1 else "s",
      "\n".join("  - " + p for p in problems))


def _sweep_problem(key, models):
  """Why the tables cannot show a sweep of gin parameter `key`, or None.

  The tables, figures and tests compare decoders per dataset, model and
  regularisation strength (the `beta` column); runs that differ in anything
  else would be pooled into one row, and a model that ignores the swept
  parameter would repeat one run under several labels.
  """
  if key not in layout.REGULARISATION_KEYS:
    return ("%s is not a model's regularisation strength, the one setting a "
            "sweep may vary (%s): the tables would pool the runs of every "
            "value into one row. Give each value a study of its own (a "
            "[train] binding)." % (
                _with_suggestion(key, layout.REGULARISATION_KEYS),
                ", ".join(layout.REGULARISATION_KEYS)))
  ignoring = [m for m in models
              if layout.MODEL_REGULARISATION.get(m, key) != key]
  if ignoring:
    return ("model%s %s ignore%s %r (%s), so %s runs would repeat each "
            "other under different labels: sweep each model's own "
            "parameter in a study of its own." % (
                "s" if len(ignoring) > 1 else "", ", ".join(ignoring),
                "" if len(ignoring) > 1 else "s", key,
                "; ".join("%s's is %s" % (m, layout.MODEL_REGULARISATION[m])
                          for m in ignoring),
                "their" if len(ignoring) > 1 else "its"))
  return None


def _model_config_hint(decoder, model, base):
  """A close decoder that has a config for `model`, for a missing pair."""
  suffix = "_%s.gin" % model
  have = sorted({name[:-len(suffix)] for root in (base, REPO_ROOT)
                 for name in _listdir(os.path.join(root, "gin_configs"))
                 if name.endswith(suffix)})
  close = difflib.get_close_matches(decoder, have, n=1)
  return "; %s (see gin_configs/*%s)" % (
      "did you mean decoder %r?" % close[0] if close else
      "a decoder and a model name the file gin_configs/<decoder>_<model>.gin",
      suffix)


def _listdir(path):
  try:
    return os.listdir(path)
  except OSError:
    return []


# --- Planning ---------------------------------------------------------------------


def _run_bindings(train, decoder_bindings, decoder, model_bindings, model,
                  sweep_items, dataset, seed, run_id):
  bindings = list(train.get("bindings", []))
  bindings += ["%s = %d" % (binding, train[key])
               for key, binding in _CHECKPOINT_BINDINGS.items() if key in train]
  bindings += list(model_bindings.get(model, []))
  bindings += list(decoder_bindings.get(decoder, []))
  bindings += ["%s = %s" % (k, gin_literal(v)) for k, v in sweep_items]
  bindings += ["dataset.name = %s" % gin_literal(dataset),
               "model.random_seed = %d" % seed,
               # Lets dlib's aggregated results name the run.
               "model.name = %s" % gin_literal(run_id)]
  return tuple(bindings)


def parse_study(path):
  """Parses and validates a study file.

  Args:
    path: Path to the TOML study file (relative to the working directory).

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
  try:
    validate(spec)
  except StudyError as e:
    raise StudyError("%s: %s" % (path, e)) from None
  base = os.path.dirname(os.path.abspath(path))
  plan = _Plan(base)
  sweep = spec.get("sweep", {})
  sweep_keys = sorted(sweep)
  train = spec.get("train", {})
  metrics = spec.get("metrics", {})
  metric_names = metrics.get("names", list(METRICS))
  given = metrics.get("configs", {})
  metric_configs = tuple(
      (m, plan.config(given.get(m, metrics_lib.METRICS[m].config),
                      "metrics.configs.%s" % m if m in given else
                      "metrics.names (%s's default config)" % m))
      for m in metric_names)
  postprocess_config = plan.config(spec.get("postprocess", {}).get(
      "config", "gin_configs/postprocess/mean.gin"), "postprocess.config")
  dataset_bindings = spec.get("dataset_bindings", {})
  decoder_bindings = spec.get("decoder_bindings", {})
  model_bindings = spec.get("model_bindings", {})
  plan.bindings("train.bindings", train.get("bindings", []))
  plan.bindings("metrics.bindings", metrics.get("bindings", []))
  for field, table in (("dataset_bindings", dataset_bindings),
                       ("decoder_bindings", decoder_bindings),
                       ("model_bindings", model_bindings)):
    for name, bindings in table.items():
      plan.bindings("%s.%s" % (field, name), bindings)
  for key in sweep_keys:
    problem = _sweep_problem(key, spec["models"])
    if problem:
      plan.problems.append('sweep."%s": %s' % (key, problem))
      continue
    plan.bindings('sweep."%s"' % key,
                  ["%s = %s" % (key, gin_literal(v)) for v in sweep[key]])
  runs = []
  for dataset, model, decoder in itertools.product(
      spec["datasets"], spec["models"], spec["decoders"]):
    configs = [plan.config(
        "gin_configs/%s_%s.gin" % (decoder, model),
        "decoders x models (decoder %r, model %r)" % (decoder, model),
        _model_config_hint(decoder, model, base))]
    configs += [plan.config(c, "train.configs[%d]" % i)
                for i, c in enumerate(train.get("configs", []))]
    for values in itertools.product(*[sweep[k] for k in sweep_keys]):
      sweep_items = tuple(zip(sweep_keys, values))
      for seed in spec["seeds"]:
        run_id = make_run_id(dataset, model, decoder, sweep_items, seed)
        runs.append(Run(
            run_id=run_id, dataset=dataset, model=model, decoder=decoder,
            seed=seed, sweep=sweep_items, model_configs=tuple(configs),
            train_bindings=_run_bindings(
                train, decoder_bindings, decoder, model_bindings, model,
                sweep_items, dataset, seed, run_id),
            dataset_bindings=tuple(dataset_bindings.get(dataset, [])),
            postprocess_config=postprocess_config,
            metric_configs=metric_configs,
            metric_bindings=tuple(metrics.get("bindings", []))))
  runs += _external_runs(spec, base, metric_configs, dataset_bindings,
                         tuple(metrics.get("bindings", [])))
  repeated = sorted(run_id for run_id, count in collections.Counter(
      run.run_id for run in runs).items() if count > 1)
  if repeated:
    raise StudyError(
        "Study %s plans several runs with the same id (%s): make seeds and "
        "sweep values distinct (ids keep only letters, digits and dots of "
        "each value)." % (path, ", ".join(repeated)))
  datasets = [("datasets[%d]" % i, name)
               for i, name in enumerate(spec["datasets"])]
  datasets += [("figures.heldout[%d]" % i, name) for i, name in enumerate(
      spec.get("figures", {}).get("heldout", []))]
  study = Study(name=spec.get("name", os.path.splitext(
      os.path.basename(path))[0]), description=spec.get("description", ""),
                runs=runs, figures=spec.get("figures", {}),
                source=os.path.abspath(path),
                baseline=spec.get("baseline", BASELINE),
                metrics=tuple(metric_names),
                resources=dict(spec.get("resources", {})),
                primary_metrics=tuple(metrics.get("primary", [
                    m for m in PRIMARY_METRICS
                    if m in metrics_lib.labels(metric_names)])),
                gin_sources=tuple((kind, where, text) for (kind, text), where
                                  in plan.sources.items()),
                dataset_names=tuple(datasets),
                external_names=tuple(e["name"]
                                     for e in spec.get("external", [])))
  if plan.problems:
    raise StudyProblems(problems_text(path, plan.problems), plan.problems,
                        study)
  return study


def _external_runs(spec, base, metric_configs, dataset_bindings,
                   metric_bindings):
  """One Run per seed of each [[external]] model: scored, never trained."""
  runs = []
  for i, entry in enumerate(spec.get("external", [])):
    dataset = entry.get("dataset", spec["datasets"][0])
    model = entry.get("model", spec["models"][0])
    if "files" in entry:
      sources = [("onnx", _resolve_model(f, base,
                                         "external[%d].files[%d]" % (i, j)))
                 for j, f in enumerate(entry["files"])]
      seeds = entry.get("seeds", list(range(len(sources))))
    else:
      seeds = entry["seeds"]
      sources = [("function", entry["function"])] * len(seeds)
    for (kind, source), seed in zip(sources, seeds):
      run_id = make_run_id(dataset, model, entry["name"], (), seed)
      runs.append(Run(
          run_id=run_id, dataset=dataset, model=model, decoder=entry["name"],
          seed=seed, sweep=(), model_configs=(), train_bindings=(),
          dataset_bindings=tuple(dataset_bindings.get(dataset, [])),
          postprocess_config="", metric_configs=metric_configs,
          metric_bindings=metric_bindings,
          external=(("kind", kind), ("source", source),
                    ("input_layout", entry.get("input_layout", "nhwc")))))
  return runs


def _resolve_model(path, base, field):
  """An external model file, relative to the study file; must exist."""
  candidate = os.path.abspath(os.path.join(base, path))
  if not os.path.isfile(candidate):
    raise StudyError("Study field `%s`: external model file %r not found "
                     "(looked next to the study file: %s). Give a path "
                     "relative to the study file, or an absolute one." % (
                         field, path, candidate))
  return candidate


def same_study(path_a, path_b):
  """True if two study files say the same: equal bytes, or equal TOML.

  Comments and layout may differ (a study file's header gains its measured
  time after a run); every value must be equal.
  """
  with open(path_a, "rb") as a, open(path_b, "rb") as b:
    text_a, text_b = a.read(), b.read()
  if text_a == text_b:
    return True
  try:
    values = [tomllib.loads(t.decode("utf-8")) for t in (text_a, text_b)]
  except (UnicodeDecodeError, tomllib.TOMLDecodeError):
    return False
  # Compared as JSON text, not with ==: 1 == 1.0 == True in Python, but
  # `vae.beta = [1, 2]` and `[1.0, 2.0]` plan runs with other ids; and nan
  # equals itself there.
  return len({json.dumps(v, sort_keys=True, default=str) for v in values}) == 1


def run_dir(output_dir, run):
  return layout.run_dir(output_dir, run.run_id)


def step_results(directory, run):
  """(step folder, dlib result kind) of every step of `run`, in order."""
  steps = [] if run.external else [
      (layout.model_dir(directory), "train"),
      (layout.postprocessed_dir(directory), "postprocess")]
  steps += [(layout.metric_dir(directory, metric), "evaluation")
            for metric, _ in run.metric_configs]
  return steps


def is_finished(output_dir, run):
  """True once the run's DONE.json and every step's result parse.

  A marker or result cut short (a killed writer, a full disk) does not
  parse: such a run counts as unfinished and redoes the broken step.
  """
  directory = run_dir(output_dir, run)
  paths = [layout.done_path(directory)] + [
      layout.step_result(step_dir, kind)
      for step_dir, kind in step_results(directory, run)]
  return all(atomic.read_json(path) is not None for path in paths)
