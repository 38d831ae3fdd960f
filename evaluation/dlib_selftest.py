"""Runs dlib's own shipped test modules under the compatibility layer.

Each `disentanglement_lib/**/*_test.py` runs in its own process as
`python -m <module>` (as dlib's `dlib_tests` script does: the modules share
global gin state and cannot run in one process), and the outcome is written
as a Markdown table.

Usage: python -m evaluation.dlib_selftest --output docs/dlib_test_suite.md
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time

import disentanglement_lib

from evaluation import markdown

_SUMMARY = re.compile(r"^Ran (\d+) tests? in ([\d.]+)s", re.M)
_STATUS = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$", re.M)


def find_test_modules():
  """Returns the dotted names of dlib's shipped test modules, sorted."""
  root = os.path.dirname(disentanglement_lib.__file__)
  modules = []
  for folder, _, files in os.walk(root):
    for name in files:
      if name.endswith("_test.py"):
        rel = os.path.relpath(os.path.join(folder, name[:-3]),
                              os.path.dirname(root))
        modules.append(rel.replace(os.sep, "."))
  return sorted(modules)


def parse_outcome(output):
  """Parses absltest/unittest output into a dict of counts.

  Args:
    output: Combined stdout and stderr of one test module.

  Returns:
    Dict with keys ran, failures, errors, skipped (ints) and status.
  """
  outcome = {"ran": 0, "failures": 0, "errors": 0, "skipped": 0,
             "status": "CRASHED"}
  ran = _SUMMARY.findall(output)
  status = _STATUS.findall(output)
  if ran and status:
    outcome["ran"] = int(ran[-1][0])
    outcome["status"] = status[-1][0]
    for key, value in re.findall(r"(\w+)=(\d+)", status[-1][1] or ""):
      if key in outcome:
        outcome[key] = int(value)
  return outcome


def failing_tests(output):
  """Returns 'test_name: last error line' for each failure or error."""
  found = []
  for block in re.split(r"^={50,}$", output, flags=re.M)[1:]:
    header = re.search(r"^(FAIL|ERROR): (\S+)", block, re.M)
    errors = re.findall(r"^(\w+(?:Error|Exception|Exit)\b.*)$", block, re.M)
    if header:
      found.append("%s: %s" % (header.group(2),
                               errors[-1][:200] if errors else "see log"))
  return found


def run_module(module, timeout):
  """Runs one test module in a fresh interpreter; returns (module, result)."""
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
  start = time.time()
  try:
    proc = subprocess.run([sys.executable, "-m", module], env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
  except subprocess.TimeoutExpired as e:
    output = (e.stdout or b"").decode() + (e.stderr or b"").decode()
    output += "\nTIMEOUT after %ds" % timeout
  result = parse_outcome(output)
  result["seconds"] = time.time() - start
  result["failing"] = failing_tests(output)
  if result["status"] == "CRASHED":
    lines = [l for l in output.strip().splitlines() if l.strip()]
    result["failing"] = [lines[-1][:200] if lines else "no output"]
  return module, result


def to_markdown(results):
  """Formats the results as a Markdown table plus a list of failures."""
  rows = []
  totals = dict(ran=0, failures=0, errors=0, skipped=0)
  for module, r in results:
    rows.append(["`%s`" % module.replace("disentanglement_lib.", ""),
                 r["ran"], r["failures"], r["errors"], r["skipped"],
                 r["status"], "%.0f" % r["seconds"]])
    for key in totals:
      totals[key] += r[key]
  rows.append(["**total (%d modules)**" % len(results), totals["ran"],
               totals["failures"], totals["errors"], totals["skipped"], "",
               ""])
  lines = markdown.markdown_table(
      ["module", "tests", "failed", "errors", "skipped", "status", "s"], rows)
  failures = [(m, f) for m, r in results for f in r["failing"]]
  if failures:
    lines += ["", "Failures and errors:", ""]
    lines += ["- `%s`: %s" % (m.replace("disentanglement_lib.", ""), f)
              for m, f in failures]
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", default=None, help="Markdown file to write.")
  parser.add_argument("--jobs", type=int, default=1)
  parser.add_argument("--timeout", type=int, default=1800)
  parser.add_argument("modules", nargs="*", help="Subset of modules to run.")
  args = parser.parse_args(argv)
  modules = args.modules or find_test_modules()
  with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
    results = list(pool.map(lambda m: run_module(m, args.timeout), modules))
  table = to_markdown(results)
  print(table)
  if args.output:
    with open(args.output, "w") as f:
      f.write(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
