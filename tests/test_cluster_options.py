"""Extra sbatch options (account, QOS, memory, constraint, setup lines, any
other) from the study's [resources] and from the command line.

The SLURM executor writes its sbatch file against a stand-in `sbatch`; bad
values are refused with the field, what was wrong and what to write.
"""
import sys
import textwrap

import pytest

from evaluation import executors
from evaluation import runner
from evaluation import study as study_lib
from evaluation.executors import base
from tests import helpers
from tests.helpers import run_tool

STUDY = textwrap.dedent("""\
    name = "cluster"
    datasets = ["colored_sprites"]
    models = ["vae"]
    decoders = ["broadcast", "deconv"]
    seeds = [0]
    """)
RESOURCES = textwrap.dedent("""\
    [resources]
    partition = "gpu"
    account = "proj_42"
    qos = "high"
    mem = "32G"
    constraint = "a100|h100"
    setup = ["module load cuda/12.2", "export OMP_NUM_THREADS=1"]
    [resources.sbatch]
    reservation = "paper"
    mail-type = "FAIL"
    exclusive = true
    """)


def _write(tmp_path, text):
  path = tmp_path / "study.toml"
  path.write_text(text)
  return str(path)


def test_study_sbatch_options_reach_the_job_file(tmp_path, monkeypatch):
  record = helpers.fake_slurm(tmp_path, monkeypatch)
  study = study_lib.parse_study(_write(tmp_path, STUDY + RESOURCES))
  out = str(tmp_path / "out")
  executor = executors.create("slurm", runner.settings(study, out))
  executor.submit([base.Task("a", "train", ("true",), "/dev/null")])
  job = (record / "sbatch_0.sh").read_text()
  for line in ("--account=proj_42", "--qos=high", "--mem=32G",
               "--constraint='a100|h100'", "--reservation=paper",
               "--mail-type=FAIL", "--partition=gpu"):
    assert "#SBATCH " + line + "\n" in job, line
  assert "#SBATCH --exclusive\n" in job
  # Setup lines run in the job, before its command.
  setup = job.index("module load cuda/12.2\nexport OMP_NUM_THREADS=1\n")
  assert setup < job.index("# command")
  executor.stop()


def test_flags_override_and_add_to_the_studys_options(tmp_path):
  study = study_lib.parse_study(_write(tmp_path, STUDY + RESOURCES))
  chosen = runner.settings(study, "/out", {
      "account": "other", "mem": None, "setup": ["source env.sh"],
      "sbatch": [("reservation", "late"), ("comment", "x")]})
  assert chosen.account == "other"
  assert chosen.mem == "32G"  # not given on the command line: the study's
  assert chosen.setup == ("source env.sh",)
  assert dict(chosen.sbatch) == {"reservation": "late", "comment": "x",
                                 "mail-type": "FAIL", "exclusive": True}


def test_without_options_the_job_file_has_none_of_them(tmp_path, monkeypatch):
  record = helpers.fake_slurm(tmp_path, monkeypatch)
  study = study_lib.parse_study(_write(tmp_path, STUDY))
  executor = executors.create("slurm", runner.settings(study, str(
      tmp_path / "out")))
  executor.submit([base.Task("a", "evaluate", ("true",), "/dev/null")])
  job = (record / "sbatch_0.sh").read_text()
  for option in ("--account", "--qos", "--mem", "--constraint", "# setup"):
    assert option not in job, option
  executor.stop()


BAD_RESOURCES = [
    ('account = "my project"', "Study field `resources.account`: must be a "
     "SLURM name (letters, digits, '_', '-', '.'), e.g. \"my_project\""),
    ('qos = ""', "Study field `resources.qos`: must be a SLURM name"),
    ("mem = 32", "Study field `resources.mem`: must be sbatch's --mem: a "
     "whole number with an optional unit K, M, G or T, in quotes, e.g. "
     "\"32G\" (got 32)"),
    ('mem = "32 GB"', "Study field `resources.mem`: must be sbatch's --mem"),
    ('constraint = "a100 h100"', "Study field `resources.constraint`: must "
     "be sbatch's --constraint"),
    ('setup = "module load cuda"', "Study field `resources.setup`: must be a "
     "list of shell lines"),
    ('setup = ["a\\nb"]', "Study field `resources.setup[0]`: must be one "
     "shell line in quotes (no line breaks)"),
    ('sbatch = "x"', "Study field `resources.sbatch`: must be a table of "
     "sbatch option -> value"),
    ('sbatch = {"--mail-type" = "FAIL"}', "Study field "
     "`resources.sbatch.--mail-type`: has option '--mail-type', which is not "
     "an sbatch long option without its '--'"),
    ('sbatch = {mem = "4G"}', "Study field `resources.sbatch.mem`: sets "
     "'mem', which the runner sets itself; use `mem` instead"),
    ('sbatch = {array = "0-3"}', "Study field `resources.sbatch.array`: sets "
     "'array', which the runner sets itself"),
    ('sbatch = {comment = "a\\nb"}', "Study field `resources.sbatch.comment`: "
     "gives comment = 'a\\nb': write a string in quotes, a whole number or "
     "true"),
    ('sbatch = {comment = 1.5}', "Study field `resources.sbatch.comment`: "
     "gives comment = 1.5"),
    ("acount = \"x\"", "Unknown study key `resources.acount` (did you mean "
     "`resources.account`?)"),
]


@pytest.mark.parametrize("line,message", BAD_RESOURCES)
def test_bad_sbatch_options_say_what_to_write(tmp_path, line, message):
  with pytest.raises(study_lib.StudyError) as raised:
    study_lib.parse_study(_write(tmp_path, STUDY + "[resources]\n" + line))
  assert message in str(raised.value)


@pytest.mark.parametrize("flag,message", [
    (["--slurm-mem", "lots"], "argument --slurm-mem: must be sbatch's --mem"),
    (["--slurm-account", "a b"], "argument --slurm-account: must be a SLURM "
     "name"),
    (["--slurm-option", "time=5"], "argument --slurm-option: sets 'time', "
     "which the runner sets itself; use `time_minutes` instead"),
    (["--slurm-setup", ""], "argument --slurm-setup: must be one shell line"),
])
def test_bad_sbatch_flags_say_what_to_write(tmp_path, flag, message):
  proc = run_tool([sys.executable, "-m", "evaluation.cli", "run",
                   _write(tmp_path, STUDY), "--output", str(tmp_path / "o"),
                   "--executor", "slurm"] + flag, check=False)
  assert proc.returncode == 2
  assert message in proc.stderr
  assert not (tmp_path / "o").exists()


def test_a_line_break_in_the_output_folder_cannot_reach_the_job_script():
  # The job name is written into #SBATCH lines: a folder named with a line
  # break would otherwise start a shell command there.
  from evaluation.executors import slurm  # pylint: disable=g-import-not-at-top
  name = slurm.job_name("/studies/out\ntouch INJECTED", "train")
  assert name == "sbd-out_touch_INJECTED-train"
  assert slurm.job_name("/studies/claim_c.v2/", "evaluate") == (
      "sbd-claim_c.v2-evaluate")
