"""The sbatch options a study may add: what each accepts, checked once.

The study file's `[resources]` table and `sbd_study run`'s flags share these
checks, so a bad value gets the same message from either. Each value ends up
on an `#SBATCH --name=value` line or (setup) a line of the job script that
submitit writes, so none may hold a line break; the executor's own options
(partition, time, GPUs, CPUs, array, output) are set through their own
fields and cannot be overridden here.

Every `check_*` returns None for a good value, else what is wrong and what to
write, for the caller to put after the field's name.
"""
import re

# An account, QOS or partition name; partitions may list several.
NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
PARTITION = re.compile(r"^[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*$")
# sbatch --mem: a whole number, optionally with a unit K, M, G or T.
MEM = re.compile(r"^[0-9]+[KMGT]?$")
# sbatch --constraint: features joined by & | , with optional [ ] ( ) * counts.
CONSTRAINT = re.compile(r"^[A-Za-z0-9_.\-&|,*\[\]()]+$")
# A long sbatch option, without its leading "--".
OPTION = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# Options the executor writes itself, or that have a field of their own.
RESERVED = {
    "partition": "partition", "time": "time_minutes",
    "gpus-per-node": "gpus_per_run", "gpus": "gpus_per_run",
    "gres": "gpus_per_run", "cpus-per-task": "cpus_per_run",
    "account": "account", "qos": "qos", "mem": "mem",
    "constraint": "constraint", "job-name": None, "array": None,
    "output": None, "error": None, "open-mode": None, "signal": None,
    "nodes": None, "ntasks-per-node": None, "wckey": None,
}


def _matching(pattern, message):
  """A check: None for a string `pattern` matches, else `message`."""

  def check(value):
    if isinstance(value, str) and pattern.match(value):
      return None
    return message

  return check


check_partition = _matching(PARTITION, (
    "must be a SLURM partition name (letters, digits, '_', '-', '.'; "
    "several separated by commas), e.g. \"gpu\""))
check_name = _matching(NAME, (
    "must be a SLURM name (letters, digits, '_', '-', '.'), e.g. "
    "\"my_project\""))
check_mem = _matching(MEM, (
    "must be sbatch's --mem: a whole number with an optional unit K, M, "
    "G or T, in quotes, e.g. \"32G\""))
check_constraint = _matching(CONSTRAINT, (
    "must be sbatch's --constraint: node features joined by '&', '|' "
    "or ',' (no spaces), e.g. \"a100|h100\""))


def check_line(value):
  if isinstance(value, str) and value.strip() and not re.search(
      r"[\n\r]", value):
    return None
  return ("must be one shell line in quotes (no line breaks), e.g. "
          "\"module load cuda/12.2\"")


def check_option(name, value):
  """Checks one extra sbatch option `--name=value`."""
  if not isinstance(name, str) or not OPTION.match(name):
    return ("has option %r, which is not an sbatch long option without its "
            "'--' (lower-case words joined by '-', e.g. \"mail-type\")" %
            (name,))
  if name in RESERVED:
    field = RESERVED[name]
    return ("sets %r, which the runner sets itself%s" % (
        name, "; use `%s` instead" % field if field else ""))
  if isinstance(value, bool) and value:
    return None  # Written as a bare flag, e.g. --exclusive.
  if not isinstance(value, bool) and isinstance(value, (int, str)) and (
      not re.search(r"[\n\r]", str(value))) and str(value).strip():
    return None
  return ("gives %s = %r: write a string in quotes, a whole number or true "
          "(a bare flag), on one line" % (name, value))


def parse_option(text):
  """'name=value' from the command line -> (name, value), or raises ValueError."""
  name, sep, value = text.partition("=")
  if not sep:
    name, value = text, True
  problem = check_option(name, value)
  if problem:
    raise ValueError(problem)
  return name, value
