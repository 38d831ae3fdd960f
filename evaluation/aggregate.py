"""dlib's aggregated results of a study as one tidy pandas table.

Loads every metric result of the finished runs with dlib's own loader (what
`dlib_aggregate_results` runs), then reshapes to one row per (run, metric)
with the columns the tables and figures use, and records the library
versions. Only results that parse are aggregated, and every table is written
atomically, so a killed or half-written step never breaks a report.
"""
import glob
import logging
import os

import pandas as pd

from evaluation import faults
from evaluation import layout
from evaluation import study as study_lib
from sbd_plugin import atomic

TRAIN_STATS = layout.TRAIN_STATS
TIDY_COLUMNS = ["run_id", "dataset", "model", "decoder", "seed", "beta",
                "metric", "value"] + list(TRAIN_STATS) + ["model_dir"]


def dlib_aggregate(output_dir):
  """Runs dlib's aggregation over the study; returns its DataFrame.

  Args:
    output_dir: Study output folder.

  Returns:
    pandas DataFrame in dlib's wide format (one row per evaluation), empty
    if nothing was evaluated yet.
  """
  from disentanglement_lib.utils import aggregate_results  # pylint: disable=g-import-not-at-top
  files = []
  for path in sorted(glob.glob(layout.evaluation_json_pattern(output_dir))):
    if atomic.read_json(path) is None:
      # A metric cut short: its run is unfinished and will redo it.
      logging.warning("Skipping %s: it does not parse.", path)
    else:
      files.append(path)
  if not files:
    return pd.DataFrame()
  # dlib's aggregate_results_to_json, over the files that parse, written
  # atomically.
  frame = pd.DataFrame([aggregate_results._load(p) for p in files])  # pylint: disable=protected-access
  path = layout.dlib_results_json(output_dir)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic.write_text(path, frame.to_json())
  faults.point("aggregate")
  return aggregate_results.load_aggregated_json_results(path)


def _number(value):
  """A float from dlib's results; NaN where a run lacks the key."""
  return float("nan") if value is None else float(value)


def _unquote(value):
  return str(value).strip("'\"")


REGULARISATION_KEYS = layout.REGULARISATION_KEYS


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
    if key in REGULARISATION_KEYS:
      return float(value)
  for key in REGULARISATION_KEYS:
    value = row.get(layout.train_config_key(key))
    if value is not None and pd.notna(value):
      return float(value)
  return float("nan")


def tidy_results(study, output_dir, wide=None):
  """Returns the study's results as one row per (finished run, metric).

  Args:
    study: evaluation.study.Study.
    output_dir: Study output folder.
    wide: Optional DataFrame from dlib_aggregate (computed if None).

  Returns:
    pandas DataFrame with TIDY_COLUMNS.
  """
  wide = dlib_aggregate(output_dir) if wide is None else wide
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
    if run is None or metric not in layout.METRIC_ROWS:
      continue
    common = {"run_id": run.run_id, "dataset": run.dataset,
              "model": run.model, "decoder": run.decoder, "seed": run.seed,
              "beta": _regularisation(run, row),
              "model_dir": layout.model_dir(study_lib.run_dir(output_dir,
                                                              run))}
    for stat in TRAIN_STATS:
      common[stat] = _number(row.get(layout.train_stat_key(stat)))
    for label, key in layout.METRIC_ROWS[metric]:
      rows.append(dict(common, metric=label, value=_number(row.get(key))))
  frame = _external_beta(pd.DataFrame(rows, columns=TIDY_COLUMNS), study)
  return frame.sort_values(["dataset", "model", "decoder", "seed",
                            "metric"]).reset_index(drop=True)


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


def write_results(frame, output_dir):
  """Writes the tidy table and the library versions next to it.

  Returns:
    Tuple (csv path, versions json path).
  """
  from sbd_plugin import versions  # pylint: disable=g-import-not-at-top
  os.makedirs(layout.results_dir(output_dir), exist_ok=True)
  csv_path = layout.results_csv(output_dir)
  # Model folders relative to the study folder: the same study run into two
  # folders gives the same table.
  relative = frame.assign(model_dir=[os.path.relpath(p, output_dir)
                                     for p in frame["model_dir"]])
  atomic.write_text(csv_path, relative.to_csv(index=False))
  versions_path = layout.versions_json(output_dir)
  recorded, machines = {}, {}
  for path in sorted(glob.glob(layout.done_pattern(output_dir))):
    done = atomic.read_json(path)
    if done is not None:
      recorded[done["run_id"]] = done["versions"]
      machines[done["run_id"]] = done.get("machine")
  atomic.write_json(versions_path, {
      "aggregated_with": versions.library_versions(), "runs": recorded,
      "machines": machines}, indent=1, sort_keys=True)
  return csv_path, versions_path
