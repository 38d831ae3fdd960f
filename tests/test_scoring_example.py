"""The worked example of docs/scoring.md: its encoder and the scores it shows."""
import os
import re

import onnx_models
from helpers import REPO
from helpers import run_tool
from helpers import TINY_METRICS

DOC = os.path.join(REPO, "docs", "scoring.md")


def _documented_lines():
  """The result lines the worked example shows (label, then a number)."""
  with open(DOC) as f:
    text = f.read()
  block = text.split("prints, after one progress line per metric:", 1)[1]
  block = block.split("```", 2)[1]
  return [line for line in block.splitlines()
          if re.match(r"^[a-z_]+ +[0-9.]+$", line)]


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
  printed = [line for line in proc.stdout.splitlines()
             if re.match(r"^[a-z_]+ +[0-9.]+$", line)]
  # As printed: six significant digits.
  assert printed == documented
  for metric in ("mig", "factor_vae", "dci"):
    assert (out / metric / "results" / "aggregate" /
            "evaluation.json").exists()
