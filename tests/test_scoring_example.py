"""The worked example of docs/scoring.md: its encoder and the scores it shows."""
import os
import re

import onnx_models
from helpers import REPO
from helpers import run_tool
from helpers import TINY_METRICS
from sbd_plugin import versions

DOC = os.path.join(REPO, "docs", "scoring.md")


def _result_lines(text):
  return [line for line in text.splitlines()
          if re.match(r"^[a-z_]+ +[0-9.]+$", line)]


def _documented_lines():
  """The result lines the worked example shows for this stack."""
  with open(DOC) as f:
    text = f.read()
  block = text.split("after one progress line per metric:", 1)[1]
  lines = _result_lines(block.split("```", 2)[1])
  if versions.STACK != "py311-tf2.15":
    # The current stack's block replaces the lines it lists (DCI's).
    block = text.split("On the current stack", 1)[1]
    changed = {line.split()[0]: line
               for line in _result_lines(block.split("```", 2)[1])}
    lines = [changed.get(line.split()[0], line) for line in lines]
  return lines


def test_committed_encoder_is_what_the_builder_writes():
  with open(onnx_models.EXAMPLE_ENCODER, "rb") as f:
    committed = f.read()
  assert committed == onnx_models.example_encoder().SerializeToString()
  assert len(committed) < 8000


def test_example_command_prints_the_documented_scores(tmp_path):
  out = tmp_path / "example"
  proc = run_tool(["sbd_score", "--model", onnx_models.EXAMPLE_ENCODER,
                   "--dataset", "colored_sprites", "--input-layout", "nchw",
                   "--metrics", "mig,factor_vae,dci", "--output", str(out),
                   "--metric-config-dir", TINY_METRICS])
  documented = _documented_lines()
  assert len(documented) == 5
  printed = _result_lines(proc.stdout)
  # As printed: six significant digits.
  assert printed == documented
  for metric in ("mig", "factor_vae", "dci"):
    assert (out / metric / "results" / "aggregate" /
            "evaluation.json").exists()
