"""Shared pytest set-up: CPU only, quiet TensorFlow, one dataset cache per run."""
import os
import subprocess
import sys

import pytest

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
  """One dataset cache for the whole session (each dataset built once).

  Also points dlib's data folder at an empty one, so that every test (and
  every tool it runs) uses the generated datasets, not a real file that
  happens to be on the machine. Both variables are restored at the end.
  """
  path = os.environ.get("SBD_TEST_CACHE") or str(
      tmp_path_factory.mktemp("sbd_cache"))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("SBD_PLUGIN_CACHE", path)
    patch.setenv("DISENTANGLEMENT_LIB_DATA",
                 str(tmp_path_factory.mktemp("dlib_data")))
    yield path


def run_tool(args, cwd=None, env=None, timeout=900, check=True):
  """Runs a command-line tool of the project's environment as a user would.

  Args:
    args: List, the tool name (a script in the venv's bin/) and its flags.
    cwd: Working directory.
    env: Extra environment variables.
    timeout: Seconds before the tool is killed.
    check: Raise with the tool's output if it exits non-zero.

  Returns:
    subprocess.CompletedProcess with text stdout and stderr.
  """
  full_env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
  full_env.update(env or {})
  exe = os.path.join(BIN, args[0])
  cmd = [exe] + list(args[1:]) if os.path.exists(exe) else list(args)
  proc = subprocess.run(cmd, cwd=cwd or REPO, env=full_env, timeout=timeout,
                        capture_output=True, text=True)
  if check and proc.returncode != 0:
    raise AssertionError("%s exited %d\n--- stdout\n%s\n--- stderr (tail)\n%s"
                         % (" ".join(args), proc.returncode, proc.stdout[-3000:],
                            proc.stderr[-6000:]))
  return proc
