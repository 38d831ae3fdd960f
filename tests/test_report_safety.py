"""`sbd_study report` never destroys results, and every result says its source.

A report refuses (and writes nothing) rather than replace results with fewer;
a study folder without runs/ (a published one, like docs/cpu_evidence) is
reported from its results.csv, which stays byte-identical, keeping the
figures drawn from the trained models; hand-written findings.md is included,
never written. One tiny study (2 runs) is run once for the whole module; each
test that changes it works on a copy.
"""
import hashlib
import json
import os
import shutil
import subprocess

import pytest

from tests.helpers import REPO
from tests.helpers import run_tool
from tests.helpers import study_toml

CPU_EVIDENCE = os.path.join(REPO, "docs", "cpu_evidence")
RUNS = ["colored_sprites-vae-deconv-seed0", "colored_sprites-vae-deconv-seed1"]
LOCK = ".lock"  # The folder lock the report takes (processes.FolderLock).


def _snapshot(folder):
  """{relative path: (sha256, mtime_ns)} of every file under `folder`."""
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
      files[os.path.relpath(path, folder)] = (digest,
                                              os.stat(path).st_mtime_ns)
  return files


def _report(folder, check=False):
  return run_tool(["sbd_study", "report", os.path.join(folder, "study.toml"),
                   "--output", str(folder)], check=check)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny study: 2 deconv runs, MIG only."""
  root = tmp_path_factory.mktemp("safety")
  spec = root / "tiny.toml"
  spec.write_text(study_toml(seeds=(0, 1), metrics=("mig",)))
  out = root / "out"
  run_tool(["sbd_study", "run", str(spec), "--output", str(out)])
  return out


@pytest.fixture
def study_copy(finished, tmp_path):
  copy = tmp_path / "study"
  shutil.copytree(finished, copy)
  return copy


def test_published_study_without_runs_is_rebuilt_and_keeps_everything(
    tmp_path):
  copy = tmp_path / "cpu_evidence"
  shutil.copytree(CPU_EVIDENCE, copy)
  assert not os.path.exists(copy / "runs")
  before = _snapshot(copy)
  _report(copy, check=True)
  after = _snapshot(copy)
  # The results, their provenance record and the hand-written findings are
  # byte-identical, and so is every figure drawn from the trained models.
  for name in ("results/results.csv", "results/versions.json",
               "results/dlib_results.json", "findings.md"):
    assert after[name][0] == before[name][0], name
  model_figures = [n for n in before if n.startswith("figures/") and
                   not n.endswith(("metric_distributions.png",
                                   "rate_distortion.png"))]
  assert model_figures
  for name in model_figures:
    assert after[name] == before[name], name
  report = (copy / "report.md").read_text()
  assert (copy / "findings.md").read_text().strip() in report
  assert "12 of 12 runs finished" in report
  assert "This folder has no `runs/`" in report
  assert ("The first two figures are redrawn from results/results.csv; the "
          "others were drawn from the trained models" in report)
  # Every kept figure is still shown, with the caption it had.
  old = open(os.path.join(CPU_EVIDENCE, "report.md")).read()
  for name in model_figures:
    assert "](%s)" % name in report, name
  geometry = [line for line in old.splitlines()
              if line.startswith("A grid of lines in")]
  assert geometry and all(line in report for line in geometry)
  # Runs made before provenance was recorded say so.
  assert "Plugin source: not recorded for any of the 12 runs." in report
  # A second report of the same folder is the same report.
  _report(copy, check=True)
  assert (copy / "report.md").read_text() == report


def test_a_published_study_with_only_table_figures_names_no_others(tmp_path):
  copy = tmp_path / "rate_distortion"
  shutil.copytree(os.path.join(REPO, "docs", "claims", "rate_distortion"),
                  copy)
  assert sorted(os.listdir(copy / "figures")) == [
      "metric_distributions.png", "rate_distortion.png"]
  _report(copy, check=True)
  report = (copy / "report.md").read_text()
  assert "The figures are redrawn from results/results.csv.\n" in report
  assert "the others were drawn" not in report


def test_report_refuses_when_runs_has_fewer_runs_and_touches_nothing(
    study_copy):
  shutil.rmtree(study_copy / "runs" / RUNS[1])
  before = _snapshot(study_copy)
  proc = _report(study_copy)
  assert proc.returncode == 2
  assert "Not rebuilding the report" in proc.stderr
  assert "1 runs would be lost (%s)" % RUNS[1] in proc.stderr
  assert "Nothing was written" in proc.stderr
  after = _snapshot(study_copy)
  after.pop(LOCK, None)
  before.pop(LOCK, None)
  assert after == before


def test_report_refuses_to_replace_results_with_no_runs_at_all(study_copy):
  for run_id in RUNS:
    shutil.rmtree(study_copy / "runs" / run_id)
  csv = (study_copy / "results" / "results.csv").read_bytes()
  proc = _report(study_copy)
  assert proc.returncode == 2
  assert "2 runs would be lost" in proc.stderr
  assert (study_copy / "results" / "results.csv").read_bytes() == csv


def test_without_runs_the_report_comes_from_results_csv(study_copy):
  shutil.rmtree(study_copy / "runs")
  csv = (study_copy / "results" / "results.csv").read_bytes()
  _report(study_copy, check=True)
  assert (study_copy / "results" / "results.csv").read_bytes() == csv
  report = (study_copy / "report.md").read_text()
  assert "2 of 2 runs finished" in report
  assert "| colored_sprites | vae | 1 | mig | deconv | 2 |" in report


def test_nothing_to_report_is_an_error(study_copy):
  shutil.rmtree(study_copy / "runs")
  shutil.rmtree(study_copy / "results")
  proc = _report(study_copy)
  assert proc.returncode == 2
  assert "nothing to report" in proc.stderr


def test_findings_are_included_and_never_written(study_copy):
  findings = "## Findings\n\nWritten by hand: deconv seed 1 looks odd.\n"
  (study_copy / "findings.md").write_text(findings)
  _report(study_copy, check=True)
  assert (study_copy / "findings.md").read_text() == findings
  assert findings.strip() in (study_copy / "report.md").read_text()


def _git(*args):
  return subprocess.run(["git"] + list(args), cwd=REPO, capture_output=True,
                        text=True, check=True).stdout.strip()


def test_every_run_records_the_code_and_the_data_it_came_from(finished):
  """DONE.json, versions.json and the report: source revision and data."""
  have_git = shutil.which("git") is not None
  for run_id in RUNS:
    with open(finished / "runs" / run_id / "DONE.json") as f:
      done = json.load(f)
    source = done["source"]
    assert source["version"]  # the installed sbd_plugin version
    if have_git:
      assert source["commit"] == _git("rev-parse", "HEAD")
      assert isinstance(source["modified"], bool)
    data = done["data"]
    assert data["dataset"] == "colored_sprites"
    masks, = data["sources"]  # the conftest's empty data folder: generated
    assert masks["kind"] == "generated"
    assert masks["generator"] == "sbd_plugin.datasets.dsprites_raster"
    cache_dir = os.path.join(os.environ["SBD_PLUGIN_CACHE"], masks["cache"])
    with open(os.path.join(cache_dir, "manifest.json")) as f:
      arrays = json.load(f)["arrays"]
    expected = hashlib.sha256(json.dumps(
        {k: v["sha256"] for k, v in arrays.items()},
        sort_keys=True).encode()).hexdigest()
    assert masks["cache_sha256"] == expected
    # Where the weights came from: each training attempt's own record.
    attempt, = done["train_attempts"]
    assert attempt["source"] == source
    assert attempt["machine"]["cpu"] == done["machine"]["cpu"]
    assert attempt["host"] == os.uname().nodename
  with open(finished / "results" / "versions.json") as f:
    versions = json.load(f)
  assert sorted(versions["sources"]) == RUNS
  assert sorted(versions["data"]) == RUNS
  assert sorted(versions["training"]) == RUNS
  report = (finished / "report.md").read_text()
  assert "Plugin source: the same for all 2 runs: " in report
  assert "Training (CPU, plugin source): the same for all 2 runs: " in report
  assert ("Data: the same for all 2 runs: `colored_sprites`: dSprites masks "
          "generated by `sbd_plugin.datasets.dsprites_raster`") in report
