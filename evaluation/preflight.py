"""Checks a study against what its workers will load, before any of them starts.

`sbd_study plan` and `run` call `check(path)`: it plans the study (missing
config files and unknown metric names are problems of the plan) and then,
in one child process, resolves every dataset name through the plugin's
registry (and looks for DeepMind's dSprites file where dlib's dSprites
datasets need it) and parses every gin config file (with its includes) and every
binding of the study against the configurables that dlib and the plugin
register. Every problem is listed at once, each with the file and line or
the study field it comes from, and a "did you mean" where a registered name
is close:

  study.toml cannot run, 2 problems:
    - datasets[0]: unknown dataset name 'dsprite' (did you mean 'dsprites_full'?) ...
    - train.bindings[1] `vae.betaa = 2`: configurable 'vae' has no parameter
      'betaa' (did you mean 'beta'?)

Why a child process: registering dlib's configurables imports TensorFlow,
which takes seconds and memory; `sbd_study` itself, `evaluation.study` and
the runner stay free of it, and the child sees exactly what a worker sees
(a fresh interpreter, the plugin activated by its import hook, the workers'
environment and working directory, from which and from the Python path gin
resolves `include`s).

A study that passed is remembered ($SBD_PLUGIN_CACHE/preflight/): a rerun or
resume of it with nothing changed starts no child. The remembered verdict
holds only for the same items, interpreter, installed packages, plugin source
files, working directory, Python path, dlib data folder and SBD_* switches,
and while every gin file the child read (includes too) and every module a gin
`import` loaded has the same SHA-256. Problems are never remembered, nor a
study with a dataset that reads a file.

The child: python -m evaluation.preflight <items.json> <answer.json>.
"""
import difflib
import hashlib
import importlib
import inspect
import json
import os
import subprocess
import sys
import sysconfig
import tempfile

from evaluation import study as study_lib
from sbd_plugin import atomic
from sbd_plugin.cache_dir import cache_root

# What a worker imports, so every configurable it can bind is registered:
# dlib's train (models, architectures, losses, optimizers), the runner's
# trainer (checkpoints), postprocessing and evaluation (every metric).
WORKER_MODULES = ("sbd_plugin", "disentanglement_lib.methods.unsupervised.train",
                  "sbd_plugin.dlib_bridge.resumable_train",
                  "disentanglement_lib.postprocessing.postprocess",
                  "disentanglement_lib.evaluation.evaluate")
# Seconds the child may take (it imports TensorFlow, on a loaded machine).
TIMEOUT_SECONDS = 600
# dlib's stock datasets that read DeepMind's dSprites file (dlib's
# data/ground_truth/dsprites.py): whether it exists is checked every time.
DSPRITES_READERS = ("dsprites_full", "dsprites_noshape", "color_dsprites",
                    "noisy_dsprites", "scream_dsprites")
# Changes when what the child checks changes, so older verdicts are not used.
_VERDICT_FORMAT = 1


def items(study):
  """What the child checks: the study's gin sources and dataset names."""
  return {"files": [[where, path] for kind, where, path in study.gin_sources
                    if kind == "file"],
          "bindings": [[where, text] for kind, where, text
                       in study.gin_sources if kind == "binding"],
          "datasets": [list(pair) for pair in study.dataset_names]}


def _source_stamps():
  """(path, size, mtime) of the plugin's Python files: its configurables."""
  stamps = []
  for package in ("sbd_plugin", "evaluation"):
    for folder, _, names in os.walk(os.path.join(study_lib.REPO_ROOT,
                                                 package)):
      for name in sorted(names):
        if name.endswith(".py"):
          stat = os.stat(os.path.join(folder, name))
          stamps.append([os.path.join(folder, name), stat.st_size,
                         stat.st_mtime_ns])
  return sorted(stamps)


def verdict_key(given, env):
  """The key of a remembered verdict on the items `given` (see `items`)."""
  # Installed packages by their metadata folders' names (name-version.dist-info).
  packages = sorted({name for folder in {sysconfig.get_paths()[k] for k in
                                         ("purelib", "platlib")}
                     if os.path.isdir(folder)
                     for name in os.listdir(folder)
                     if name.endswith((".dist-info", ".egg-info"))})
  facts = {"format": _VERDICT_FORMAT, "items": given,
           "python": [sys.executable, sys.version], "packages": packages,
           "sources": _source_stamps(), "cwd": os.getcwd(),
           "pythonpath": env.get("PYTHONPATH", ""),
           "data": env.get("DISENTANGLEMENT_LIB_DATA", ""),
           # The plugin's switches (SBD_PLUGIN_DISABLE, ...) change what the
           # child would register.
           "switches": sorted([k, v] for k, v in env.items()
                              if k.startswith("SBD_"))}
  return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _verdict_path(key):
  return os.path.join(cache_root(), "preflight", key + ".json")


def _file_hashes(paths):
  """{path: SHA-256} of `paths`; None if one cannot be read."""
  hashes = {}
  for path in paths:
    try:
      with open(path, "rb") as f:
        hashes[path] = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
      return None
  return hashes


def remembered_pass(key):
  """True if the items of `key` passed and no gin file read has changed."""
  try:
    read = atomic.read_json(_verdict_path(key))["read"]
  except (OSError, ValueError, KeyError, TypeError):
    return False
  return isinstance(read, dict) and _file_hashes(read) == read


def _remember_pass(key, read_files):
  hashes = _file_hashes(read_files)
  if hashes is None:
    return
  try:
    os.makedirs(os.path.dirname(_verdict_path(key)), exist_ok=True)
    atomic.write_json(_verdict_path(key), {"read": hashes})
  except OSError:
    pass  # Only a later check's speed depends on it.


def problems(study):
  """Checks `study`'s items (in the child, unless remembered); its problems."""
  from evaluation.executors import base  # pylint: disable=g-import-not-at-top
  given, env = items(study), base.worker_env()
  remember = not any(name in DSPRITES_READERS
                     for _, name in given["datasets"])
  key = verdict_key(given, env) if remember else None
  if remember and remembered_pass(key):
    return []
  found, read_files = _child_answer(given, env)
  if remember and not found:
    _remember_pass(key, read_files)
  return found


def _child_answer(given_items, env):
  """Runs the child on the items; returns (problems, gin files it read)."""
  with tempfile.TemporaryDirectory(prefix="sbd_preflight") as tmp:
    given, found = os.path.join(tmp, "items.json"), os.path.join(
        tmp, "problems.json")
    with open(given, "w") as f:
      json.dump(given_items, f)
    try:
      proc = subprocess.run(
          [sys.executable, "-m", "evaluation.preflight", given, found],
          env=env, capture_output=True, text=True,
          stdin=subprocess.DEVNULL, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
      return ["the check of the gin configs did not end within %d s" %
              TIMEOUT_SECONDS], []
    if proc.returncode != 0 or not os.path.exists(found):
      lines = [l for l in proc.stderr.splitlines() if l.strip()]
      return ["the check of the gin configs could not run (a worker would "
              "fail the same way): %s" % (lines[-1] if lines else
                                          "exit status %d" % proc.returncode)
             ], []
    with open(found) as f:
      answer = json.load(f)
    return answer["problems"], answer["read"]


def check(path):
  """Plans the study at `path` and checks it; returns the Study.

  Raises:
    study_lib.StudyError: listing every problem found, if any.
  """
  try:
    study = study_lib.parse_study(path)
    found = []
  except study_lib.StudyProblems as e:
    study, found = e.study, list(e.problems)
  found += problems(study)
  if found:
    raise study_lib.StudyError(study_lib.problems_text(path, found))
  return study


# --- The child: runs with dlib and the plugin imported ------------------------


def _suggest(name, valid):
  close = difflib.get_close_matches(name, sorted(set(valid)), n=1)
  return " (did you mean %r?)" % close[0] if close else ""


def _stock_files():
  """dlib's stock datasets that read DeepMind's dSprites file -> that file.

  The other stock datasets' files are not checked.
  """
  from sbd_plugin.datasets import data_dir  # pylint: disable=g-import-not-at-top
  return {name: data_dir.DSPRITES_NPZ for name in DSPRITES_READERS}


def dataset_problems(datasets):
  """Unknown dataset names, or stock ones whose file is missing, by field."""
  from sbd_plugin.datasets import data_dir  # pylint: disable=g-import-not-at-top
  from sbd_plugin.datasets import registry  # pylint: disable=g-import-not-at-top
  valid = set(registry.STOCK_DATASETS) | set(registry.PLUGIN_DATASETS)
  files = _stock_files()
  found = []
  for where, name in datasets:
    if name not in valid:
      found.append("%s: unknown dataset name %r%s; valid names: %s" % (
          where, name, _suggest(name, valid), ", ".join(sorted(valid))))
    elif name in files and not os.path.isfile(data_dir.path(files[name])):
      found.append(
          "%s: dlib's %r reads %s, which does not exist (set "
          "$DISENTANGLEMENT_LIB_DATA, or run dlib_download_data there; the "
          "plugin's generated datasets, e.g. colored_sprites, need no file)"
          % (where, name, os.path.abspath(data_dir.path(files[name]))))
  return found


class _Gin(object):
  """Checks gin statements against the registered configurables."""

  def __init__(self):
    import gin  # pylint: disable=g-import-not-at-top
    self._config = gin.config
    self._parser = gin.config_parser
    self.problems = []
    self.seen_files = set()  # Gin files, each checked once.
    self.imported_files = set()  # Sources of modules gin `import`ed.

  def _short_names(self):
    return [selector.split(".")[-1]
            for selector, _ in self._config._REGISTRY.items()]  # pylint: disable=protected-access

  def _configurable(self, selector):
    return self._config._REGISTRY.get_match(selector)  # pylint: disable=protected-access

  def _unknown_configurable(self, selector):
    return "no configurable %r is registered%s" % (
        selector, _suggest(selector.split(".")[-1], self._short_names()))

  def _parameters(self, configurable):
    fn = configurable.wrapped
    if inspect.isclass(fn):
      fn = self._config._find_class_construction_fn(fn)  # pylint: disable=protected-access
    while hasattr(fn, "__wrapped__"):
      fn = fn.__wrapped__
    spec = inspect.getfullargspec(fn)
    names = [a for a in spec.args + spec.kwonlyargs if a != "self"]
    if configurable.allowlist:
      names = [a for a in names if a in configurable.allowlist]
    return [a for a in names if a not in (configurable.denylist or ())]

  def _binding(self, scope, selector, arg_name):
    """The problem of binding `selector.arg_name`, or None."""
    if not arg_name:
      return None  # A macro.
    configurable = self._configurable(selector)
    if configurable is None:
      return self._unknown_configurable(selector)
    try:
      self._config.ParsedBindingKey.parse((scope, selector, arg_name))
    except ValueError:
      return "configurable %r has no parameter %r%s; its parameters: %s" % (
          selector, arg_name, _suggest(arg_name, self._parameters(
              configurable)), ", ".join(self._parameters(configurable)))
    return None

  def _delegate(self, where):
    """A parser delegate that records unknown references instead of raising."""
    checker = self

    class Delegate(self._config.ParserDelegate):

      def configurable_reference(self, scoped_selector, evaluate):
        selector = scoped_selector.rsplit("/", 1)[-1]
        if checker._configurable(selector) is None:  # pylint: disable=protected-access
          checker.problems.append("%s: reference @%s: %s" % (
              where(), scoped_selector,
              checker._unknown_configurable(selector)))  # pylint: disable=protected-access
          return None
        return super(Delegate, self).configurable_reference(
            scoped_selector, evaluate)

    return Delegate(skip_unknown=False)

  def _statements(self, text, where_of):
    """Checks every statement of gin `text`; `where_of(location)` names one."""
    location = [None]

    def where():
      return where_of(location[0])

    parser = self._parser.ConfigParser(text, self._delegate(where))
    with self._config._parse_scope() as context:  # pylint: disable=protected-access
      while True:
        try:
          statement = next(parser)
        except StopIteration:
          return
        except SyntaxError as e:
          self.problems.append("%s: gin cannot parse this: %s" % (
              where_of(self._parser.Location(e.filename, e.lineno, e.offset,
                                             e.text or "")), e.msg))
          return
        except ValueError as e:  # e.g. an ambiguous macro; stops the parser
          self.problems.append("%s: %s" % (where(), e))
          return
        location[0] = statement.location
        self._statement(statement, context, where_of)

  def _statement(self, statement, context, where_of):
    parser = self._parser
    here = where_of(statement.location)
    if isinstance(statement, parser.BindingStatement):
      problem = self._binding(statement.scope, statement.selector,
                              statement.arg_name)
      if problem:
        self.problems.append("%s: %s" % (here, problem))
    elif isinstance(statement, parser.BlockDeclaration):
      if self._configurable(statement.selector) is None:
        self.problems.append("%s: %s" % (
            here, self._unknown_configurable(statement.selector)))
    elif isinstance(statement, parser.ImportStatement):
      try:
        context.process_import(statement)
      except ImportError as e:
        self.problems.append("%s: cannot import %s: %s" % (
            here, statement.module, e))
      else:  # Its source decides what it registers: part of the verdict.
        source = getattr(sys.modules.get(statement.module), "__file__", None)
        if source:
          self.imported_files.add(source)
    elif isinstance(statement, parser.IncludeStatement):
      found = self._open_include(statement.filename)
      if found is None:
        self.problems.append(
            "%s: included file %r not found (gin looks in the working "
            "directory %s and on the Python path)" % (
                here, statement.filename, os.getcwd()))
      else:
        self.file(*found)

  def _open_include(self, filename):
    """(path, text) of an included file, found as gin finds it, or None."""
    config = self._config
    prefixes = (config._LOCATION_PREFIXES  # pylint: disable=protected-access
                if not os.path.isabs(filename) else [""])
    for prefix in prefixes:
      candidate = os.path.join(prefix, filename)
      for reader, exists in config._FILE_READERS:  # pylint: disable=protected-access
        if exists(candidate):
          with reader(candidate) as f:
            return os.path.abspath(getattr(f, "name", candidate)), f.read()
    return None

  def file(self, path, text=None, where=None):
    """Checks a config file (once) and the files it includes."""
    if path in self.seen_files:
      return
    self.seen_files.add(path)
    if text is None:
      with open(path) as f:
        text = f.read()

    def where_of(location):
      line = "%s:%s" % (path, location.line_num if location else "?")
      return "%s (%s)" % (line, where) if where else line

    self._statements(text, where_of)

  def binding(self, where, text):
    """Checks one binding written in the study file."""
    self._statements(text, lambda unused_location: "%s `%s`" % (where, text))


def child_answer(given):
  """Every problem of the items `given` (see `items`); imports dlib.

  Returns:
    {"problems": [...], "read": [every gin file read, includes too, and the
    source of every module a gin `import` statement loaded]}.
  """
  for module in WORKER_MODULES:
    importlib.import_module(module)
  found = dataset_problems(given["datasets"])
  checker = _Gin()
  for where, path in given["files"]:
    checker.file(path, where=where)
  for where, text in given["bindings"]:
    checker.binding(where, text)
  return {"problems": found + checker.problems,
          "read": sorted(os.path.abspath(p) for p in
                         checker.seen_files | checker.imported_files)}


def main(argv):
  with open(argv[1]) as f:
    given = json.load(f)
  answer = child_answer(given)
  with open(argv[2], "w") as f:
    json.dump(answer, f)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
