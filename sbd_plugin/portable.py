"""Portable mode: the same bytes on any x86-64 CPU with AVX.

Without it, numbers agree bit for bit only on one CPU type: numpy, OpenBLAS,
TensorFlow's oneDNN and glibc's libm each pick their kernels from the CPU's
features (dlib's own `dci_test.DisentanglementTest.test_zero` gives -2.2e-16
instead of 0 on AVX-512 CPUs through numpy's AVX-512 kernels). Portable mode
pins every such choice through the environment, to what every CPU that runs
TensorFlow 2.15's wheels (AVX) has. `VARIABLES` is that environment, each
variable with why; docs/reproducibility.md, "Portable mode", says what it
costs and what it cannot pin.

It is on when `SBD_PORTABLE=1` (the environment switch) or the study file
says `portable = true` under [resources] (`sbd_study run --portable`). The
libraries read these variables once, when they load, so they must be set
before numpy or TensorFlow is imported:
- the study runner puts them into every worker's environment
  (`evaluation.executors.base.worker_env`);
- for any other process of the environment (dlib's own commands, a script),
  the activation hook (`_sbd_plugin_hook.py`, run at interpreter start-up)
  sets them when `SBD_PORTABLE=1`. Two are read by the interpreter or the
  dynamic loader before any Python runs (`START_ONLY`): the hook sets them
  for the processes this one starts, and `record()` says whether they were
  in force here. `eval "$(python -m sbd_plugin.portable)"` exports all of
  them into a shell, so a command started from it has them from its start.

Pure standard library, importable before numpy: the hook imports it at
start-up.
"""
import collections
import os
import sys

ENV = "SBD_PORTABLE"
# Study file: `portable` under [resources]; recorded under this key.
KEY = "portable"

Variable = collections.namedtuple("Variable", "name value why")

# Every dispatch target of numpy 1.26 above x86-64's baseline (SSE SSE2 SSE3),
# as numpy.core._multiarray_umath.__cpu_dispatch__ lists them, plus numpy 2's
# AVX512_SPR (numpy 1.26 ignores a name it does not dispatch on, and a
# feature the CPU lacks; the baseline itself cannot be disabled).
NUMPY_DISPATCH = ("SSSE3", "SSE41", "POPCNT", "SSE42", "AVX", "F16C", "FMA3",
                  "AVX2", "AVX512F", "AVX512CD", "AVX512_KNL", "AVX512_KNM",
                  "AVX512_SKX", "AVX512_CLX", "AVX512_CNL", "AVX512_ICL",
                  "AVX512_SPR")
# glibc's hwcaps that select libm's FMA/AVX2 variants of exp, log, pow, sin,
# ... (names of glibc >= 2.33, then of older glibc; unknown names are ignored).
_GLIBC_HWCAPS = "glibc.cpu.hwcaps=" + ",".join(
    "-" + name for name in ("AVX2_Usable", "FMA_Usable", "FMA4_Usable",
                            "AVX2", "FMA", "FMA4"))

VARIABLES = (
    Variable("NPY_DISABLE_CPU_FEATURES", " ".join(NUMPY_DISPATCH),
             "numpy runs its baseline SSE3 loops, not the AVX2/AVX-512 ones "
             "the CPU would pick (dci_test.test_zero: -2.2e-16 vs 0)"),
    Variable("OPENBLAS_CORETYPE", "Sandybridge",
             "numpy's and scipy's OpenBLAS use their AVX kernels (no FMA), "
             "which every AVX CPU runs, not the kernel chosen per CPU"),
    Variable("OPENBLAS_NUM_THREADS", "1",
             "OpenBLAS splits sums by thread: one thread, one order"),
    Variable("OMP_NUM_THREADS", "1",
             "scikit-learn's OpenMP loops and OpenBLAS's OpenMP builds: one "
             "thread"),
    Variable("MKL_NUM_THREADS", "1", "the same for an MKL build of numpy"),
    Variable("TF_ENABLE_ONEDNN_OPTS", "0",
             "TensorFlow's Eigen kernels (this wheel: compiled for AVX, "
             "whatever the CPU) instead of oneDNN's, which pick their ISA at "
             "run time; overrides the hook's default of 1"),
    Variable("ONEDNN_MAX_CPU_ISA", "AVX",
             "still needed with oneDNN off: TensorFlow's matrix products "
             "(Eigen's contraction kernel) call oneDNN's sgemm, which picks "
             "AVX2/AVX-512 code by CPU (measured: other bits at AVX, AVX2)"),
    Variable("TF_NUM_INTRAOP_THREADS", "1",
             "MatMul, Conv2D and their gradients split sums by thread: the "
             "bits depend on the thread count, which is one per core by "
             "default"),
    Variable("TF_NUM_INTEROP_THREADS", "1",
             "independent ops one at a time: the same schedule everywhere"),
    Variable("PYTHONHASHSEED", "0",
             "the same set and dict-of-set order in every process (read at "
             "interpreter start)"),
    Variable("GLIBC_TUNABLES", _GLIBC_HWCAPS,
             "glibc's libm uses its SSE2/AVX variants, not its FMA ones "
             "(measured: Python's math.exp/log/sin/pow give other bits; read "
             "by the dynamic loader at process start)"),
)
NAMES = tuple(v.name for v in VARIABLES)
# Read before any Python code runs: setting them here reaches children only.
START_ONLY = ("PYTHONHASHSEED", "GLIBC_TUNABLES")
# Their values when this process started (this module is imported by the
# start-up hook, before anything changes them).
_AT_START = {name: os.environ.get(name) for name in START_ONLY}


def enabled(environ=None):
  """Whether portable mode is switched on by the environment (SBD_PORTABLE).

  Raises:
    ValueError: if SBD_PORTABLE holds something other than 1, 0 or nothing.
  """
  value = (os.environ if environ is None else environ).get(ENV, "").strip()
  if value not in ("", "0", "1"):
    raise ValueError("%s=%r: set it to 1 (portable mode) or 0 (off), or "
                     "unset it." % (ENV, value))
  return value == "1"


def _value(variable, environ):
  """The value to set: GLIBC_TUNABLES keeps other tunables already set."""
  if variable.name != "GLIBC_TUNABLES":
    return variable.value
  others = [t for t in environ.get(variable.name, "").split(":")
            if t and not t.startswith("glibc.cpu.hwcaps=")]
  return ":".join(others + [variable.value])


def environment(environ=None):
  """The variables of portable mode, with SBD_PORTABLE=1, as a dict.

  Args:
    environ: The environment they will join (default os.environ): other
      glibc tunables in it are kept.
  """
  environ = os.environ if environ is None else environ
  env = {v.name: _value(v, environ) for v in VARIABLES}
  env[ENV] = "1"
  return env


def apply(environ=None):
  """Sets the pinned variables in `environ` (os.environ), overriding values.

  Returns:
    Names whose value this changed (a user's own value included).
  """
  environ = os.environ if environ is None else environ
  changed = [name for name, value in environment(environ).items()
             if environ.get(name) != value]
  environ.update(environment(environ))
  return changed


def _in_force(name, environ):
  return _AT_START[name] if name in START_ONLY else environ.get(name)


def not_in_force(environ=None):
  """Names of pinned variables this process does not run with.

  A START_ONLY variable counts only if it was set when the process started.
  """
  environ = os.environ if environ is None else environ
  wanted = environment(environ)
  return [name for name in NAMES
          if _in_force(name, environ) != wanted[name]]


class PortableModeError(ValueError):
  """Portable mode is asked for but not in force (retrying cannot help)."""


def check(environ=None):
  """Raises PortableModeError if portable mode is on but not fully in force.

  For processes that promise portable results (the study's workers): every
  variable must be in their environment from their start.
  """
  if enabled(environ) and not_in_force(environ):
    raise PortableModeError(
        "%s=1 but %s not in force in this process (set after it started, or "
        "changed since). Start it with portable mode's variables: "
        "eval \"$(python -m sbd_plugin.portable)\", or run it through "
        "sbd_study." % (ENV, ", ".join(not_in_force(environ))))


def libraries_loaded():
  """Modules that read the variables and were loaded before this check."""
  return [m for m in ("numpy", "tensorflow", "scipy", "sklearn")
          if m in sys.modules]


def record(environ=None):
  """What every result records of the mode.

  Returns:
    Dict: `on` (SBD_PORTABLE=1), `variables` (each pinned variable's value in
    force in this process, None if unset) and, when on, `not_in_force` (the
    pinned variables this process did not run with: [] for a portable run).
  """
  environ = os.environ if environ is None else environ
  try:
    on = enabled(environ)
  except ValueError:
    on = False
  result = {"on": on, "variables": {name: _in_force(name, environ)
                                    for name in NAMES}}
  if on:
    result["not_in_force"] = not_in_force(environ)
  return result


def shell_exports(environ=None):
  """`export NAME='value'` lines of portable mode, for `eval` in a shell."""
  return "\n".join("export %s='%s'" % (name, value)
                   for name, value in sorted(environment(environ).items()))


def describe():
  """Lines listing each variable, its value and why (for --help and docs)."""
  return ["%s=%s  # %s" % (v.name, v.value, v.why) for v in VARIABLES]


if __name__ == "__main__":
  if "--describe" in sys.argv[1:]:
    print("\n".join(describe()))
  else:
    print(shell_exports())
