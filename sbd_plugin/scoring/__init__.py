"""Scoring external models (ONNX files, PyTorch or JAX functions) with dlib's metrics.

`score` (also `sbd_plugin.score`) runs dlib's metrics on any representation
function; `onnx_model.OnnxModel` makes one of an ONNX file (the `sbd_score`
command, evaluation/score_cli.py). `representation` checks a function's
answers; dlib's evaluation step itself is run by
`sbd_plugin.dlib_bridge.external_evaluation`.
"""
from sbd_plugin.scoring.api import DEFAULT_METRICS
from sbd_plugin.scoring.api import score
from sbd_plugin.scoring.api import ScoringError
from sbd_plugin.scoring.onnx_model import ModelError
from sbd_plugin.scoring.representation import RepresentationError

__all__ = ["score", "DEFAULT_METRICS", "ScoringError", "ModelError",
           "RepresentationError"]
