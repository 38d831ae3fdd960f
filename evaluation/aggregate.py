"""dlib's aggregated results of a study as one tidy pandas table.

Loads every metric result of the finished runs as dlib's own loader does
(what `dlib_aggregate_results` runs, minus its TensorFlow file layer), then
reshapes to one row per (run, metric) with the columns the tables and figures
use, and records the library versions. Only results that parse are
aggregated, and every table is written atomically, so a killed or
half-written step never breaks a report.
"""
import glob
import io
import logging
import math
import os

import pandas as pd
import simplejson as json

from evaluation import faults
from evaluation import layout
from evaluation import metrics as metrics_lib
from evaluation import study as study_lib
from evaluation import tables
from sbd_plugin import atomic
from sbd_plugin import provenance
from sbd_plugin import versions

TIDY_COLUMNS = ["run_id", "dataset", "model", "decoder", "seed", "beta",
                "metric", "value"] + list(layout.TRAIN_STATS) + ["model_dir"]


def dlib_results_text(output_dir):
  """dlib's aggregated results of the study as JSON text, written nowhere.

  What dlib's `aggregate_results_to_json` writes, over the metric results
  that parse (a metric cut short belongs to an unfinished run, which will
  redo it).

  Args:
    output_dir: Study output folder.

  Returns:
    String of JSON, None if nothing was evaluated yet.
  """
  files = []
  for path in sorted(glob.glob(layout.evaluation_json_pattern(output_dir))):
    if atomic.read_json(path) is None:
      logging.warning("Skipping %s: it does not parse.", path)
    else:
      files.append(path)
  if not files:
    return None
  return pd.DataFrame([_load_like_dlib(p) for p in files]).to_json()


def _load_like_dlib(path):
  """One metric result as dlib's `aggregate_results._load` reads it.

  The same parser (simplejson) and the same added "path" key; opened with
  `open` rather than dlib's TensorFlow `gfile`, so a report needs no
  TensorFlow (disentanglement_lib/utils/aggregate_results.py;
  test_cli_e2e's aggregation test checks the two agree).
  """
  with open(path) as f:
    result = json.load(f)
  result["path"] = path
  return result


def dlib_frame(text):
  """dlib's wide DataFrame (one row per evaluation) from `dlib_results_text`.

  Reads it as dlib's `load_aggregated_json_results` reads its file; an empty
  DataFrame for None.
  """
  if text is None:
    return pd.DataFrame()
  return pd.read_json(io.StringIO(text), orient="columns")


def write_dlib_results(text, output_dir):
  """Writes `dlib_results_text` to results/dlib_results.json, atomically."""
  path = layout.dlib_results_json(output_dir)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_text(path, text)
  faults.point("aggregate")


def _number(value):
  """A float from dlib's results; NaN where a run lacks the key."""
  return float("nan") if value is None else float(value)


def _unquote(value):
  return str(value).strip("'\"")


def _regularisation(run, row):
  """The run's beta or gamma: as swept, else as training recorded it.

  Args:
    run: evaluation.study.Run.
    row: The run's row of dlib's aggregated results. It has every model's
      columns, NaN where another model's parameter does not apply.

  Returns:
    Float, NaN if neither the sweep nor the training config sets one.
  """
  for key, value in run.sweep:
    if key in layout.REGULARISATION_KEYS:
      return float(value)
  for key in layout.REGULARISATION_KEYS:
    value = row.get(layout.train_config_key(key))
    if value is not None and pd.notna(value):
      return float(value)
  return float("nan")


def tidy_results(study, output_dir, wide=None):
  """Returns the study's results as one row per (finished run, metric).

  Args:
    study: evaluation.study.Study.
    output_dir: Study output folder.
    wide: Optional DataFrame from dlib_frame (read from the runs if None).

  Returns:
    pandas DataFrame with TIDY_COLUMNS.
  """
  # Read, never written here: a caller checks the rows before writing any.
  wide = dlib_frame(dlib_results_text(output_dir)) if wide is None else wide
  runs = {r.run_id: r for r in study.runs
          if study_lib.is_finished(output_dir, r)}
  rows = []
  for _, row in wide.iterrows():
    name = row.get(layout.MODEL_NAME_KEY)
    if name is None or pd.isna(name):  # An external model: its record.
      name = row.get(layout.EXTERNAL_NAME_KEY, "")
    run = runs.get(_unquote(name))
    # The worker names each evaluation after its study metric.
    metric = _unquote(row.get(layout.EVALUATION_NAME_KEY, ""))
    if run is None or metric not in metrics_lib.METRICS:
      continue
    common = {"run_id": run.run_id, "dataset": run.dataset,
              "model": run.model, "decoder": run.decoder, "seed": run.seed,
              "beta": _regularisation(run, row),
              "model_dir": layout.model_dir(study_lib.run_dir(output_dir,
                                                              run))}
    for stat in layout.TRAIN_STATS:
      common[stat] = _number(row.get(layout.train_stat_key(stat)))
    for result in metrics_lib.METRICS[metric].rows:
      rows.append(dict(common, metric=result.label,
                       value=_number(row.get(result.result_key))))
  frame = _external_beta(pd.DataFrame(rows, columns=TIDY_COLUMNS), study)
  return frame.sort_values(["dataset", "model", "decoder", "seed",
                            "metric"]).reset_index(drop=True)


# Training settings that may differ between runs of one comparison: the
# run's name and seed, and when checkpoints are written (resumes are
# bit-identical to uninterrupted runs).
_PER_RUN_SETTINGS = ("model.name", "model.random_seed", "model.model_num",
                     "checkpoints.every_steps", "checkpoints.every_seconds")


def _decoder_setting(binding):
  """True for a binding of the decoder: it may differ between decoders."""
  configurable = binding.rsplit(".", 1)[0].rsplit("/", 1)[-1]
  return configurable == "decoder" or configurable.endswith("_decoder")


def _planned_key(binding, planned):
  """The key of `planned` that dlib's recorded `binding` stands for, or None.

  dlib records gin's shortest name of a configurable; a study may spell it
  with its module (`train.model.batch_size`), or the other way round.
  """
  for key in planned:
    if binding == key or binding.endswith("." + key) or key.endswith(
        "." + binding):
      return key
  return None


def _planned(bindings):
  """{binding: value text} of gin binding lines; the last one of a key wins."""
  planned = {}
  for line in bindings:
    if "=" in line:
      key, value = line.split("=", 1)
      planned[key.strip()] = value.strip()
  return planned


def planned_per_decoder(runs):
  """The training bindings a study plans differently for its decoders.

  Runs of one dataset, model, sweep and seed are planned alike except for
  what the study's `[decoder_bindings]` give each decoder (and the run's
  name): such a binding may differ between runs planned with different
  values, as intended, but must agree among runs planned alike.

  Args:
    runs: The study's runs (evaluation.study.Run).

  Returns:
    {binding key as the study writes it (`model.batch_size`): {run id: its
    planned value text, None where the run's plan leaves it unset}}.
  """
  groups, plans = {}, {}
  for run in runs:
    if not run.external:  # Trained elsewhere: no training bindings here.
      # As the worker binds them: the dataset's bindings come last.
      plans[run.run_id] = _planned(list(run.train_bindings) +
                                   list(run.dataset_bindings))
      groups.setdefault((run.dataset, run.model, run.sweep, run.seed),
                        []).append(plans[run.run_id])
  keys = set()
  for planned in groups.values():
    for key in set().union(*planned):
      if len({p.get(key) for p in planned}) > 1:
        keys.add(key)
  return {key: {run_id: plan.get(key) for run_id, plan in plans.items()}
          for key in sorted(keys - set(_PER_RUN_SETTINGS))}


def _setting_text(value):
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "unset"
  if isinstance(value, float) and value.is_integer():
    return str(int(value))  # A column with NaN holds 64 as 64.0.
  return str(value)


def settings_differences(tidy, wide, per_decoder=None):
  """Training settings that differ between runs one table row compares.

  A resumed study whose gin files were edited between sessions, or whose
  runs trained with another plugin version, compares runs trained
  differently; the tables would not show it. Within a (dataset, model,
  beta) group every training binding must be the same, except each run's
  name and seed, checkpoint timing, the decoder's own bindings (which must
  agree among one decoder's runs) and the bindings the study plans per
  decoder (which must agree among the runs planned with one value).

  Args:
    tidy: `tidy_results`' frame (its run ids and groups).
    wide: dlib's wide DataFrame (`dlib_frame`), with `train_config.*`.
    per_decoder: `planned_per_decoder`'s bindings the study's
      `[decoder_bindings]` plan differently per decoder (e.g. a batch size),
      with each run's planned value.

  Returns:
    List of (group text, binding, {value text: [run ids]}), sorted; empty
    when every group is consistent or the wide table has no such columns.
  """
  if not len(tidy) or layout.MODEL_NAME_KEY not in wide:
    return []
  prefix = layout.train_config_key("")
  columns = [c for c in wide.columns if c.startswith(prefix)]
  trained = wide[wide[layout.MODEL_NAME_KEY].notna()].copy()
  trained["run_id"] = [_unquote(n) for n in trained[layout.MODEL_NAME_KEY]]
  trained = trained.drop_duplicates("run_id").set_index("run_id")
  runs = tidy.drop_duplicates("run_id").set_index("run_id")
  runs = runs[runs.index.isin(trained.index)]
  found = []
  for key, group in runs.groupby(["dataset", "model", "beta"], dropna=False):
    text = "%s, %s, %s" % (key[0], key[1], tables.format_strength(key[1],
                                                                  key[2]))
    for column in columns:
      binding = column[len(prefix):]
      if binding in _PER_RUN_SETTINGS:
        continue
      planned = _planned_key(binding, per_decoder or {})
      if planned is not None:  # Runs planned alike must agree.
        parts = group.groupby([per_decoder[planned].get(run_id)
                               for run_id in group.index], dropna=False)
      elif _decoder_setting(binding):
        parts = group.groupby("decoder")
      else:
        parts = [(None, group)]
      for _, part in parts:
        values = {}
        for run_id in sorted(part.index):
          values.setdefault(_setting_text(trained.at[run_id, column]),
                            []).append(run_id)
        if len(values) > 1:
          found.append((text, binding, values))
  return sorted(found, key=lambda f: (f[0], f[1]))


def _external_beta(frame, study):
  """Puts external models in the beta group of the trained runs beside them.

  A model trained elsewhere has no beta here; where the trained runs of its
  dataset and model have one beta, its rows join that group, so the tables
  compare it with the baseline. With a beta sweep they stay apart ("-").
  """
  external = frame["decoder"].isin(study.external_names)
  if not external.any():
    return frame
  frame = frame.copy()
  trained = frame[~external]
  for (dataset, model), group in frame[external].groupby(["dataset",
                                                          "model"]):
    betas = trained[(trained["dataset"] == dataset) &
                    (trained["model"] == model)]["beta"].dropna().unique()
    if len(betas) == 1:
      frame.loc[group.index, "beta"] = betas[0]
  return frame


def read_results(output_dir):
  """The study folder's results/results.csv as a tidy frame, or None.

  Model folders are made absolute again (the file holds them relative to the
  study folder).

  Raises:
    StudyError: if the file exists but is not a results table.
  """
  path = layout.results_csv(output_dir)
  if not os.path.exists(path):
    return None
  try:
    # round_trip: the floats exactly as written (the default parser can
    # differ in the last bit, and a quartile in the third decimal).
    frame = pd.read_csv(path, dtype={"run_id": str, "metric": str},
                        float_precision="round_trip")
  except (ValueError, pd.errors.ParserError) as e:
    raise study_lib.StudyError("%s does not parse as a results table (%s); "
                               "restore it or move it away." % (path, e))
  missing = [c for c in TIDY_COLUMNS if c not in frame.columns]
  if missing:
    raise study_lib.StudyError("%s lacks the columns %s; restore it or move "
                               "it away." % (path, ", ".join(missing)))
  return frame.assign(model_dir=[os.path.join(output_dir, str(p))
                                 for p in frame["model_dir"]])


def _recorded_runs(output_dir):
  """Every finished run's DONE.json, by run id."""
  recorded = {}
  for path in sorted(glob.glob(layout.done_pattern(output_dir))):
    done = atomic.read_json(path)
    if done is not None:
      recorded[done["run_id"]] = done
  return recorded


def _listed(items, limit=8):
  items = sorted(items)
  text = ", ".join(items[:limit])
  return text + (" and %d more" % (len(items) - limit)
                 if len(items) > limit else "")


def check_nothing_lost(frame, output_dir):
  """Refuses to replace the folder's results with fewer.

  Args:
    frame: The tidy results about to be written (`tidy_results`).
    output_dir: Study output folder.

  Raises:
    StudyError: naming what would be lost, if results/results.csv has a
      (run, metric) row `frame` lacks or results/versions.json records a run
      no DONE.json records now.
  """
  kept = read_results(output_dir)
  if kept is not None and len(kept):
    new = set(zip(frame["run_id"], frame["metric"]))
    lost = [(r, m) for r, m in zip(kept["run_id"], kept["metric"])
            if (r, m) not in new]
    if lost:
      runs = {r for r, _ in lost}
      raise study_lib.StudyError(
          "Not rebuilding the report of %s: %s has %d rows of %d runs, but "
          "the finished runs in %s give %d rows of %d runs; %d rows of %d "
          "runs would be lost (%s). Nothing was written. Restore the missing "
          "runs, or move %s away to report from runs/ alone." % (
              output_dir, layout.results_csv(output_dir), len(kept),
              kept["run_id"].nunique(), layout.runs_dir(output_dir),
              len(frame), frame["run_id"].nunique(), len(lost), len(runs),
              _listed(runs), layout.results_dir(output_dir)))
  versions = atomic.read_json(layout.versions_json(output_dir)) or {}
  lost = set(versions.get("runs") or {}) - set(_recorded_runs(output_dir))
  if lost:
    raise study_lib.StudyError(
        "Not rebuilding the report of %s: %s records %d runs whose DONE.json "
        "is gone (%s). Nothing was written. Restore them, or move %s away "
        "to report from runs/ alone." % (
            output_dir, layout.versions_json(output_dir), len(lost),
            _listed(lost), layout.results_dir(output_dir)))


def write_results(frame, output_dir, dlib_text=None):
  """Writes the tidy table and what every run came from next to it.

  Call `check_nothing_lost` first.

  Args:
    frame: Tidy results (`tidy_results`).
    output_dir: Study output folder.
    dlib_text: Optional `dlib_results_text`, written as dlib_results.json.

  Returns:
    Tuple (csv path, versions json path).
  """
  os.makedirs(layout.results_dir(output_dir), exist_ok=True)
  if dlib_text is not None:
    write_dlib_results(dlib_text, output_dir)
  csv_path = layout.results_csv(output_dir)
  # Model folders relative to the study folder: the same study run into two
  # folders gives the same table.
  relative = frame.assign(model_dir=[os.path.relpath(p, output_dir)
                                     for p in frame["model_dir"]])
  atomic.write_text(csv_path, relative.to_csv(index=False))
  versions_path = layout.versions_json(output_dir)
  done = _recorded_runs(output_dir)
  atomic.write_json(versions_path, {
      "aggregated_with": versions.library_versions(),
      "aggregated_with_source": provenance.source_revision(),
      "runs": {r: d["versions"] for r, d in done.items()},
      "machines": {r: d.get("machine") for r, d in done.items()},
      # Absent from runs made before they were recorded: None.
      layout.VERSIONS_SOURCES: {r: d.get(provenance.SOURCE_KEY)
                                for r, d in done.items()},
      layout.VERSIONS_DATA: {r: d.get(provenance.DATA_KEY)
                             for r, d in done.items()},
      layout.VERSIONS_TRAINING: {r: d.get("train_attempts")
                                 for r, d in done.items()}},
                    indent=1, sort_keys=True)
  return csv_path, versions_path
