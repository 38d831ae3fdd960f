"""dlib's aggregated results of a study as one tidy pandas table.

Uses dlib's own `aggregate_results` (what `dlib_aggregate_results` runs) over
every finished run, then reshapes to one row per (run, metric) with the
columns the tables and figures use, and records the library versions.
"""
import glob
import json
import os

import pandas as pd

from evaluation import study as study_lib

# dlib's evaluation function -> (metric label, result key it reports).
METRIC_KEYS = {
    "@mig": ("mig", "evaluation_results.discrete_mig"),
    "@factor_vae_score": ("factor_vae", "evaluation_results.eval_accuracy"),
    "@dci": ("dci", "evaluation_results.disentanglement"),
}
TRAIN_STATS = ("reconstruction_loss", "kl_loss", "elbo")
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
  pattern = os.path.join(output_dir, "runs", "*", "metrics", "*", "*",
                         "results", "aggregate", "evaluation.json")
  if not glob.glob(pattern):
    return pd.DataFrame()
  path = os.path.join(output_dir, "results", "dlib_results.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  aggregate_results.aggregate_results_to_json(pattern, path)
  return aggregate_results.load_aggregated_json_results(path)


def _unquote(value):
  return str(value).strip("'\"")


# The gin parameter that weighs each model's regulariser.
REGULARISATION_KEYS = ("vae.beta", "factor_vae.gamma", "beta_tc_vae.beta")


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
    value = row.get("train_config." + key)
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
    run = runs.get(_unquote(row.get("train_config.model.name", "")))
    fn = row.get("evaluation_config.evaluation.evaluation_fn")
    if run is None or fn not in METRIC_KEYS:
      continue
    metric, key = METRIC_KEYS[fn]
    beta = _regularisation(run, row)
    record = {"run_id": run.run_id, "dataset": run.dataset,
              "model": run.model, "decoder": run.decoder, "seed": run.seed,
              "beta": beta, "metric": metric, "value": float(row[key]),
              "model_dir": os.path.join(study_lib.run_dir(output_dir, run),
                                        "model")}
    for stat in TRAIN_STATS:
      record[stat] = float(row["train_results.%s" % stat])
    rows.append(record)
  frame = pd.DataFrame(rows, columns=TIDY_COLUMNS)
  return frame.sort_values(["dataset", "model", "decoder", "seed",
                            "metric"]).reset_index(drop=True)


def write_results(frame, output_dir):
  """Writes the tidy table and the library versions next to it.

  Returns:
    Tuple (csv path, versions json path).
  """
  from sbd_plugin import versions  # pylint: disable=g-import-not-at-top
  folder = os.path.join(output_dir, "results")
  os.makedirs(folder, exist_ok=True)
  csv_path = os.path.join(folder, "results.csv")
  frame.to_csv(csv_path, index=False)
  versions_path = os.path.join(folder, "versions.json")
  recorded = {}
  for path in glob.glob(os.path.join(output_dir, "runs", "*",
                                     study_lib.DONE_FILE)):
    with open(path) as f:
      done = json.load(f)
    recorded[done["run_id"]] = done["versions"]
  with open(versions_path, "w") as f:
    json.dump({"aggregated_with": versions.library_versions(),
               "runs": recorded}, f, indent=1, sort_keys=True)
  return csv_path, versions_path
