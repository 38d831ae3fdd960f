"""Memory benchmark: resident memory of a fresh process per dataset."""
import json
import os
import subprocess
import sys

import numpy as np

from evaluation.benchmark import harness
from evaluation.benchmark import machine

# The child is this package's command line run as `python -m`, from the
# folder holding the `evaluation` package, so it resolves without installing.
_CHILD_MODULE = __package__
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def rss_kib():
  """Current resident memory of this process from /proc (KiB)."""
  values = {}
  for key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
    field = machine.read_proc("/proc/self/status", key + ":")
    values[key] = int(field.split()[0]) if field else 0
  return values


def memory_child(name, batches, batch_size):
  """Runs in a fresh process: RSS after import and after using a dataset."""
  from disentanglement_lib.data.ground_truth import named_data  # pylint: disable=g-import-not-at-top,unused-import
  after_import = rss_kib()
  data = harness.dataset(name)
  random_state = np.random.RandomState(0)
  for _ in range(batches):
    np.asarray(data.sample_observations(batch_size, random_state), np.float32)
  after = rss_kib()
  print(json.dumps({"after_import": after_import, "after_dataset": after}))


def measure_memory(name, batches, batch_size):
  """RSS of a fresh process before and after constructing `name` (MiB).

  Args:
    name: Dataset name.
    batches: Batches sampled (sample_observations) after construction.
    batch_size: Images per batch.

  Returns:
    Dict with import, total and dataset RSS in MiB, and the dataset's
    file-backed share (memory-mapped caches, shared between processes).
  """
  # Build the on-disk caches here, so that the child only reads them.
  harness.dataset(name)
  proc = subprocess.run(
      [sys.executable, "-m", _CHILD_MODULE, "--memory-child", name,
       "--memory-batches", str(batches), "--batch-size", str(batch_size)],
      cwd=_REPO, capture_output=True, text=True, check=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  before, after = result["after_import"], result["after_dataset"]
  mib = lambda kib: kib / 1024.0
  return {"import": mib(before["VmRSS"]), "total": mib(after["VmRSS"]),
          "dataset": mib(after["VmRSS"] - before["VmRSS"]),
          "dataset_file": mib(after["RssFile"] - before["RssFile"]),
          "peak": mib(after["VmHWM"])}


def report_memory(report, datasets, batch_size, batches):
  """Measures and reports the memory part.

  Args:
    report: formatting.Report to print to.
    datasets: Dataset names.
    batch_size: Images per batch.
    batches: Batches sampled per dataset.
  """
  report.section("Resident memory (MiB), fresh process per dataset, %d "
                 "batches of %d" % (batches, batch_size))
  rows = []
  for name in datasets:
    mem = measure_memory(name, batches, batch_size)
    rows.append([name] + ["%.0f" % mem[key] for key in (
        "import", "total", "dataset", "dataset_file", "peak")])
  report.table(["dataset", "RSS after import", "RSS total", "dataset share",
                "of which file-backed", "peak RSS"], rows)
  report.note("file-backed: memory-mapped dataset caches, shared through the "
              "page cache by all processes using the dataset.")
