"""Fault-injection points, so tests can kill a study at any stage.

`SBD_FAULT_AT=<stage>` makes the process that reaches `<stage>` SIGKILL
itself there, as a pre-emption or an out-of-memory kill would. Stages:
"train", "postprocess", "metric:<name>" (worker), "aggregate" and "report"
(runner). Unset, each point is one dictionary look-up.
"""
import os
import signal

ENV = "SBD_FAULT_AT"


def point(stage):
  """Dies by SIGKILL here if $SBD_FAULT_AT names `stage`."""
  if os.environ.get(ENV) == stage:
    os.kill(os.getpid(), signal.SIGKILL)
