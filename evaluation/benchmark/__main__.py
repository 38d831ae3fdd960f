"""Runs the benchmark command: `python -m evaluation.benchmark [flags]`."""
import sys

from evaluation.benchmark.cli import main

sys.exit(main())
