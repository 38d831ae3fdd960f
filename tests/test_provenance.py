"""What a result came from: the plugin's revision and the data's source.

The revision is read with git from the package's own folder and never fails
when git is missing or the code is not a checkout; the data source is the
real file (path, SHA-256) or the generator with its cache checksum; the
report says whether the runs share one of each. A real study's records are
checked in test_report_safety.py.
"""
import hashlib
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from evaluation import provenance_report
from sbd_plugin import provenance
from sbd_plugin.datasets import cache
from sbd_plugin.datasets import sources
from tests.helpers import REPO

needs_git = pytest.mark.skipif(shutil.which("git") is None,
                               reason="git is not installed")


def _git(cwd, *args):
  return subprocess.run(
      ["git", "-c", "user.name=t", "-c", "user.email=t@t"] + list(args),
      cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@needs_git
def test_revision_of_this_checkout():
  record = provenance.source_revision()
  assert record["commit"] == _git(REPO, "rev-parse", "HEAD")
  assert record["modified"] == bool(_git(REPO, "status", "--porcelain",
                                         "--untracked-files=no"))
  assert os.path.samefile(record["checkout"], REPO)


@needs_git
def test_a_modified_tree_is_recorded_as_modified(tmp_path):
  package = tmp_path / "repo" / "sbd_plugin"
  package.mkdir(parents=True)
  (package / "__init__.py").write_text("x = 1\n")
  _git(tmp_path / "repo", "init", "-q")
  _git(tmp_path / "repo", "add", "-A")
  _git(tmp_path / "repo", "commit", "-qm", "c")
  clean = provenance.source_revision(str(package))
  assert clean["commit"] == _git(tmp_path / "repo", "rev-parse", "HEAD")
  assert clean["modified"] is False
  # A study's output inside the checkout is not a change of the code.
  (tmp_path / "repo" / "out").mkdir()
  (tmp_path / "repo" / "out" / "results.csv").write_text("a\n")
  assert provenance.source_revision(str(package))["modified"] is False
  (package / "__init__.py").write_text("x = 2\n")
  modified = provenance.source_revision(str(package))
  assert modified["modified"] is True
  assert modified["changed"] == ["sbd_plugin/__init__.py"]
  assert provenance.describe_revision(
      provenance.source_revision(str(package))) == "commit %s (modified)" % (
          clean["commit"][:12])


@needs_git
def test_a_copy_not_tracked_by_the_checkout_around_it_has_no_commit(
    tmp_path):
  # As a package installed into a virtualenv that lives inside a checkout.
  _git(tmp_path, "init", "-q")
  package = tmp_path / ".venv" / "sbd_plugin"
  package.mkdir(parents=True)
  (package / "__init__.py").write_text("")
  record = provenance.source_revision(str(package))
  assert record["commit"] is None and record["modified"] is None
  assert "not tracked" in record["note"]


def test_not_a_checkout_records_the_installed_version(tmp_path):
  record = provenance.source_revision(str(tmp_path))
  assert record["commit"] is None
  assert record["version"] == provenance.source_revision()["version"]
  assert provenance.describe_revision(record) == (
      "sbd_plugin %s (no git checkout)" % record["version"])


def test_missing_git_never_fails(tmp_path, monkeypatch):
  monkeypatch.setenv("PATH", str(tmp_path))  # no git on it
  record = provenance.source_revision()
  assert record["commit"] is None
  assert "git is not installed" in record["note"]


def test_a_real_file_is_recorded_by_real_path_and_sha256(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  (data / "real.npz").write_bytes(b"dsprites bytes")
  os.symlink(data / "real.npz", tmp_path / "link.npz")
  sources.clear()
  sources.record_file("dSprites masks", str(tmp_path / "link.npz"))
  record, = sources.recorded()
  assert record == {"what": "dSprites masks", "kind": "file",
                    "path": str(data / "real.npz"),
                    "sha256": hashlib.sha256(b"dsprites bytes").hexdigest()}


def test_a_generated_asset_is_recorded_with_its_cache_checksum(
    tmp_path, monkeypatch):
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path))
  cache.load_or_build("asset", "v3", lambda: {"a": np.arange(3),
                                              "b": np.ones(2)})
  sources.clear()
  sources.record_generated("masks", "some.generator", "asset", "v3")
  record, = sources.recorded()
  with open(tmp_path / "asset" / "manifest.json") as f:
    arrays = json.load(f)["arrays"]
  digests = {k: hashlib.sha256(open(tmp_path / "asset" / (k + ".npy"),
                                    "rb").read()).hexdigest()
             for k in ("a", "b")}
  assert {k: v["sha256"] for k, v in arrays.items()} == digests
  assert record["cache_sha256"] == hashlib.sha256(
      json.dumps(digests, sort_keys=True).encode()).hexdigest()
  assert record["kind"] == "generated" and record["cache_version"] == "v3"
  # A rebuilt asset with other content has another checksum.
  first = record["cache_sha256"]
  cache.load_or_build("asset", "v4", lambda: {"a": np.arange(4)})
  assert cache.checksum("asset") != first


def _versions(path, sources_by_run, data_by_run):
  trained = [{"machine": {"cpu": "c", "simd": "s"}, "source": r}
             for r in sources_by_run.values()][:1]
  path.write_text(json.dumps({"aggregated_with": {}, "runs": {},
                              "sources": sources_by_run,
                              "data": data_by_run,
                              "training": {r: trained
                                           for r in sources_by_run}}))
  return str(path)


def test_report_says_when_all_runs_share_one_revision_and_data(tmp_path):
  rev = {"commit": "a" * 40, "modified": False, "version": "0.1.0"}
  data = {"dataset": "colored_sprites", "sources": [
      {"what": "dSprites masks", "kind": "file", "path": "/d/ds.npz",
       "sha256": "f" * 64}]}
  lines = provenance_report.provenance_lines(
      _versions(tmp_path / "v.json", {"r1": rev, "r2": rev},
                {"r1": data, "r2": data}), ["r1", "r2"])
  text = "\n".join(lines)
  assert "Plugin source: the same for all 2 runs: commit aaaaaaaaaaaa " \
         "(clean)." in text
  assert ("Data: the same for all 2 runs: `colored_sprites`: dSprites masks "
          "from `/d/ds.npz` (sha256 ffffffffffffffff).") in text
  assert "Not recorded" not in text


def test_report_lists_the_runs_of_each_revision_when_they_differ(tmp_path):
  a = {"commit": "a" * 40, "modified": False}
  b = {"commit": "b" * 40, "modified": True}
  lines = provenance_report.provenance_lines(
      _versions(tmp_path / "v.json", {"r1": a, "r2": b}, {}),
      ["r1", "r2", "r3"])
  assert "Plugin source: the runs differ (3 kinds):" in lines
  assert "- commit aaaaaaaaaaaa (clean): `r1`" in lines
  assert "- commit bbbbbbbbbbbb (modified): `r2`" in lines
  assert "- not recorded: `r3`" in lines
  assert "Data: not recorded for any of the 3 runs." in lines


def test_report_says_where_each_run_was_trained(tmp_path):
  """A run resumed on another machine, with other code, is named apart."""
  here = {"machine": {"cpu": "AMD EPYC 9B14", "simd": "avx512"},
          "source": {"commit": "a" * 40, "modified": False}}
  there = {"machine": {"cpu": "Intel Xeon 8481C", "simd": "avx512_amx"},
           "source": {"commit": "b" * 40, "modified": False}}
  path = tmp_path / "v.json"
  path.write_text(json.dumps({"training": {
      "r1": [here], "r2": [here, here], "r3": [here, there],
      "ext": "external"}}))
  lines = provenance_report.provenance_lines(str(path),
                                             ["r1", "r2", "r3", "ext", "old"])
  assert "Training (CPU, plugin source): the runs differ (4 kinds):" in lines
  assert ("- AMD EPYC 9B14 (avx512), commit aaaaaaaaaaaa (clean): `r1`, "
          "`r2`") in lines
  assert ("- AMD EPYC 9B14 (avx512), commit aaaaaaaaaaaa (clean) then Intel "
          "Xeon 8481C (avx512_amx), commit bbbbbbbbbbbb (clean): `r3`") in lines
  assert "- trained elsewhere (an external model): `ext`" in lines
  assert "- not recorded: `old`" in lines
