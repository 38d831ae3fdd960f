"""Where things are: a study folder's layout and the keys of dlib's result files.

The one module that spells a path inside a study output folder or a key of
dlib's result JSONs (a metric's own result keys are in its record,
evaluation/metrics.py); every other module asks it. A study folder is:

  <output>/study.toml                     copy of the study file (resume check)
  <output>/runs/<run_id>/run.json         the run's spec (evaluation.study.Run)
  <output>/runs/<run_id>/model/           dlib_train output (tfhub/, results/)
  <output>/runs/<run_id>/postprocessed/mean/           dlib_postprocess output
  <output>/runs/<run_id>/metrics/mean/<metric>/        dlib_evaluate output
  <output>/runs/<run_id>/DONE.json        written last: the run is finished
  <output>/runs/<run_id>/error.log        the last failure's traceback
  <output>/runs/<run_id>/worker.log       the worker's output
  <output>/runs/<run_id>/timings.json     seconds of each finished step
  <output>/runs/<run_id>/model/progress.json   training step and rate, live
  <output>/slurm/                         submitit's job files and logs
  <output>/results/                       aggregated tables
  <output>/figures/                       the report's figures
  <output>/report.md                      written by `sbd_study report`
  <output>/findings.md                    hand-written; report.md includes it

Within each dlib step folder, dlib writes `results/aggregate/<kind>.json`
(kind: train, postprocess or evaluation) and `results/gin/<kind>.gin`.
"""
import os

from sbd_plugin import safe_names

STUDY_COPY = "study.toml"
RUN_SPEC = "run.json"
DONE_FILE = "DONE.json"
ERROR_FILE = "error.log"
WORKER_LOG = "worker.log"
TIMINGS_FILE = "timings.json"
# One record per training attempt (machine, versions, source): where the
# weights came from, which may differ from where the metrics ran.
TRAIN_ATTEMPTS_FILE = "train_attempts.json"
# What DONE.json records as an external model's training attempts.
EXTERNAL_TRAINING = "external"
PROGRESS_FILE = "progress.json"  # In the model folder, while training runs.
SLURM_DIR = "slurm"
REPORT = "report.md"
FINDINGS = "findings.md"  # Hand-written; the report includes, never writes it.
# results/versions.json's per-run tables of what each run came from.
VERSIONS_SOURCES = "sources"  # the plugin's source revision
VERSIONS_DATA = "data"  # the dataset's source
VERSIONS_TRAINING = "training"  # each training attempt's machine and source
REPRESENTATION = "mean"  # dlib's postprocessing the runner uses.

# --- dlib's result keys -------------------------------------------------------

# Keys of dlib's aggregated results (`aggregate_results`), as flattened there.
MODEL_NAME_KEY = "train_config.model.name"
# Every training statistic dlib's models record (FactorVAE has no elbo).
TRAIN_STATS = ("loss", "reconstruction_loss", "regularizer", "kl_loss", "elbo")
# The gin parameter that sets each model's regularisation strength (DIP-VAE:
# its off-diagonal weight; AnnealedVAE: its final capacity).
REGULARISATION_KEYS = ("vae.beta", "factor_vae.gamma", "beta_tc_vae.beta",
                       "dip_vae.lambda_od", "annealed_vae.c_max")
# Each of the plugin's models' regularisation strength, the one parameter a
# study's [sweep] may vary for it (another would be pooled into one row).
MODEL_REGULARISATION = {"vae": "vae.beta", "beta_vae": "vae.beta",
                        "factorvae": "factor_vae.gamma",
                        "beta_tc_vae": "beta_tc_vae.beta",
                        "dip_vae": "dip_vae.lambda_od",
                        "annealed_vae": "annealed_vae.c_max"}
# How figures and captions name each model's value in the `beta` column
# (dlib's parameter of the key above); "β" for the others.
REGULARISATION_SYMBOLS = {"factorvae": "γ", "dip_vae": "λ_od",
                          "annealed_vae": "C_max"}
EVALUATION_NAME_KEY = "evaluation_config.evaluation.name"
# An external model's name in its record (sbd_plugin.scoring.api), which
# dlib copies into each metric's results; the runner names it after the run.
EXTERNAL_NAME_KEY = "external_config.name"


def train_stat_key(stat):
  """The aggregated-results column of a training statistic (TRAIN_STATS)."""
  return "train_results.%s" % stat


def train_config_key(binding):
  """The aggregated-results column of a training gin binding (`vae.beta`)."""
  return "train_config.%s" % binding


# --- A study folder -------------------------------------------------------------


def study_copy(output_dir):
  return os.path.join(output_dir, STUDY_COPY)


def runs_dir(output_dir):
  return os.path.join(output_dir, "runs")


def run_dir(output_dir, run_id):
  """The folder of one run (run_id: a validated id, never a path)."""
  return os.path.join(runs_dir(output_dir), run_id)


def results_dir(output_dir):
  return os.path.join(output_dir, "results")


def results_csv(output_dir):
  return os.path.join(results_dir(output_dir), "results.csv")


def versions_json(output_dir):
  return os.path.join(results_dir(output_dir), "versions.json")


def dlib_results_json(output_dir):
  return os.path.join(results_dir(output_dir), "dlib_results.json")


def comparison_prefix(output_dir):
  """Path without extension of the comparison tables (.md, .csv, .tex)."""
  return os.path.join(results_dir(output_dir), "comparison")


def heldout_errors_csv(output_dir):
  return os.path.join(results_dir(output_dir), "heldout_errors.csv")


def rate_distortion_csv(output_dir):
  """Claim (c)'s table: per beta and decoder, NLL, KL and MIG, NLL test."""
  return os.path.join(results_dir(output_dir), "rate_distortion_by_beta.csv")


def rate_distortion_pooled_csv(output_dir):
  """Claim (c) across the sweep: MIG vs the baseline, stratified by beta."""
  return os.path.join(results_dir(output_dir), "rate_distortion_across_beta.csv")


def heldout_gaps_csv(output_dir):
  """Claim (d)'s table: held-out minus seen error per decoder, vs baseline."""
  return os.path.join(results_dir(output_dir), "heldout_gaps.csv")


def dataset_gaps_csv(output_dir):
  """Claim (e)'s table: a decoder's gap on one dataset minus on another."""
  return os.path.join(results_dir(output_dir), "dataset_gaps.csv")


def slurm_dir(output_dir):
  """submitit's folder: one subfolder per job with its pickles and logs."""
  return os.path.join(output_dir, SLURM_DIR)


def figures_dir(output_dir):
  return os.path.join(output_dir, "figures")


def report_path(output_dir):
  return os.path.join(output_dir, REPORT)


def findings_path(output_dir):
  return os.path.join(output_dir, FINDINGS)


def evaluation_json_pattern(output_dir):
  """Glob of every metric result of the study (dlib_aggregate_results's input)."""
  return os.path.join(runs_dir(output_dir), "*", "metrics", "*", "*",
                      "results", "aggregate", "evaluation.json")


def done_pattern(output_dir):
  """Glob of every finished run's DONE.json."""
  return os.path.join(runs_dir(output_dir), "*", DONE_FILE)


# --- One run folder -------------------------------------------------------------


def run_spec(directory):
  return os.path.join(directory, RUN_SPEC)


def done_path(directory):
  return os.path.join(directory, DONE_FILE)


def error_path(directory):
  return os.path.join(directory, ERROR_FILE)


def worker_log(directory):
  return os.path.join(directory, WORKER_LOG)


def timings_path(directory):
  return os.path.join(directory, TIMINGS_FILE)


def train_attempts_path(directory):
  return os.path.join(directory, TRAIN_ATTEMPTS_FILE)


def model_dir(directory):
  return os.path.join(directory, "model")


def postprocessed_dir(directory, representation=REPRESENTATION):
  return os.path.join(directory, "postprocessed", representation)


def metric_dir(directory, metric, representation=REPRESENTATION):
  """A metric's dlib step folder; `metric` must be one folder name."""
  return os.path.join(directory, "metrics", representation,
                      safe_names.folder_name(metric, "metric name"))


# --- Inside a dlib step folder (model/, postprocessed/mean/, metrics/...) --------


def step_result(step_dir, kind):
  """dlib's result JSON of a step; kind: train, postprocess or evaluation."""
  return os.path.join(step_dir, "results", "aggregate", kind + ".json")


def step_gin(step_dir, kind):
  """dlib's operative gin config of a step (e.g. `train.gin` of a model)."""
  return os.path.join(step_dir, "results", "gin", kind + ".gin")


def progress_path(model_dir_path):
  """The training's live progress (step, total, steps/s) in a model folder."""
  return os.path.join(model_dir_path, PROGRESS_FILE)


def tfhub_dir(model_dir_path):
  """The TF-Hub module dlib_train exports into a model folder."""
  return os.path.join(model_dir_path, "tfhub")
