"""What a failed, stopped or shared run leaves behind, and what it says.

- a failed run's summary names the error of its last attempt, never an
  earlier attempt's (worker.log is appended to by every attempt), also when
  the attempt before was cut short in the middle of a line;
- a signal arriving while the runner starts a worker stops it, not hangs it;
- a SIGTERMed worker or runner frees its lock, even where the lock is a file
  (no flock: Lustre, some NFS), so a requeued job on another node can go on,
  and also when the signal lands in a finalizer (which drops exceptions);
- lock files respect the umask, and a lock file another user made read-only
  is still locked, without naming an earlier holder as the current one;
- a study folder is reported only with the study file it was made with
  (comments aside), and two runners on one new folder keep the first copy;
- a resumed step's (training's) seconds add up over attempts; a step redone
  from scratch (a metric) records the attempt that made its result.
"""
import dataclasses
import errno
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import threading
import types

import pytest

from evaluation import cli
from evaluation import layout
from evaluation import processes
from evaluation import runner
from evaluation import study as study_lib
from evaluation import worker
from evaluation.executors import base
from sbd_plugin import atomic
from tests import helpers


def _run(run_id="r"):
  return study_lib.Run(
      run_id=run_id, dataset="colored_sprites", model="vae", decoder="deconv",
      seed=0, sweep=(), model_configs=(), train_bindings=(),
      dataset_bindings=(), postprocess_config="", metric_configs=(),
      metric_bindings=())


def _run_folder(tmp_path, run_id="r"):
  directory = tmp_path / "runs" / run_id
  directory.mkdir(parents=True)
  return directory


def test_a_killed_attempt_is_not_blamed_on_an_earlier_attempts_error(
    tmp_path):
  directory = _run_folder(tmp_path)
  # An earlier attempt failed on a full disk; this one was SIGKILLed (out of
  # memory) during training, after some output of its own.
  (directory / layout.ERROR_FILE).write_text(
      "Traceback ...\nDiskFullError: The disk holding x is full.\n")
  (directory / layout.WORKER_LOG).write_text(
      "%s (pid 1)\nTraceback ...\nValueError: an old gin typo, fixed since\n"
      "%s (pid 2)\n[worker] train phase of r starts at 1.0 (pid 2)\n" % (
          worker.ATTEMPT_MARKER, worker.ATTEMPT_MARKER))
  outcome = runner._ended(str(tmp_path), _run(), base.exit_error(-9))  # pylint: disable=protected-access
  assert outcome.error == ("worker killed by SIGKILL; its last output: "
                           "[worker] train phase of r starts at 1.0 (pid 2)")
  assert not outcome.error_log  # error.log is the earlier attempt's.
  summary = runner.summarize([outcome])
  assert "DiskFull" not in summary and "gin typo" not in summary


def test_a_second_worker_says_the_run_is_being_written(tmp_path):
  directory = _run_folder(tmp_path)
  (directory / layout.WORKER_LOG).write_text(
      "%s (pid 1)\nValueError: old\n%s (pid 2)\n"
      "Run r is being written by another worker: worker of r (pid 1 on h).\n"
      % (worker.ATTEMPT_MARKER, worker.ATTEMPT_MARKER))
  outcome = runner._ended(str(tmp_path), _run(), base.exit_error(3))  # pylint: disable=protected-access
  assert outcome.error == (
      "worker exited with status 3; its last output: Run r is being written "
      "by another worker: worker of r (pid 1 on h).")


def test_a_signal_while_a_worker_starts_stops_the_children_at_once(
    tmp_path, monkeypatch):
  children = processes.Children()
  real_popen = subprocess.Popen

  def popen_interrupted(*args, **kwargs):
    # The runner's SIGTERM handler runs in the main thread, inside `start`.
    children.terminate_all(grace_seconds=0.1)
    return real_popen(*args, **kwargs)

  monkeypatch.setattr(subprocess, "Popen", popen_interrupted)
  thread = threading.Thread(target=children.start, args=(
      [sys.executable, "-c", "pass"], subprocess.DEVNULL, dict(os.environ)),
                            daemon=True)
  thread.start()
  thread.join(timeout=20)
  assert not thread.is_alive(), "terminate_all deadlocked inside start"
  assert children.start([sys.executable, "-c", "pass"], subprocess.DEVNULL,
                        dict(os.environ)) is None  # Stopping: no new child.


def test_the_runners_signal_handler_frees_a_lock_file(tmp_path, no_flock,
                                                      monkeypatch):
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  assert (tmp_path / ".lock.owner").exists()
  stopped = []

  class Executor(object):
    def stop(self):
      stopped.append(True)

  def exit_(code):
    raise SystemExit(code)

  monkeypatch.setattr(os, "_exit", exit_)
  previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  try:
    runner._stop_on_signals(Executor(), lock)  # pylint: disable=protected-access
    with pytest.raises(SystemExit) as exited:
      signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
  finally:
    signal.signal(signal.SIGTERM, previous[0])
    signal.signal(signal.SIGINT, previous[1])
  assert exited.value.code == 128 + signal.SIGTERM
  assert stopped == [True]
  assert not (tmp_path / ".lock.owner").exists()


_SLOW_WORKER = textwrap.dedent("""
    import errno, fcntl, sys, time
    def refuse(fd, op): raise OSError(errno.ENOSYS, "no flock here")
    fcntl.flock = refuse
    from evaluation import worker
    def slow(run, directory, phase):
      print("working", flush=True)
      time.sleep(60)
    worker._execute = slow
    sys.exit(worker.main(["worker", "--phase", "train", sys.argv[1]]))
    """)


def _start_worker(directory, script):
  """Runs `script` (a worker's stand-in) on a run spec in `directory`."""
  spec = directory / "run.json"
  spec.write_text(_run().to_json())
  return subprocess.Popen([sys.executable, "-c", script, str(spec)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, cwd=helpers.REPO)


def _lines_until(proc, line):
  """`proc`'s output lines up to `line`; fails if it ends before."""
  lines = []
  while line not in lines:
    lines.append(proc.stdout.readline().strip())
    assert lines[-1] or proc.poll() is None, lines
  return lines


def test_a_sigtermed_worker_frees_its_lock_file(tmp_path):
  directory = _run_folder(tmp_path)
  (directory / layout.ERROR_FILE).write_text("ValueError: an earlier one\n")
  proc = _start_worker(directory, _SLOW_WORKER)
  try:
    lines = _lines_until(proc, "working")
    assert lines[0].startswith(worker.ATTEMPT_MARKER)
    assert (directory / ".lock.owner").exists()
    assert not (directory / layout.ERROR_FILE).exists()  # The earlier one.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
  finally:
    proc.kill()
    proc.wait()
  assert not (directory / ".lock.owner").exists()
  assert "[worker] stopped by SIGTERM" in proc.stdout.read()


_WORKER_IN_A_FINALIZER = textwrap.dedent("""
    import errno, fcntl, sys, time
    def refuse(fd, op): raise OSError(errno.ENOSYS, "no flock here")
    fcntl.flock = refuse
    from evaluation import worker
    class Finalized(object):
      first = True
      def __del__(self):
        if Finalized.first:  # SIGTERM arrives while this runs.
          Finalized.first = False
          print("finalizing", flush=True)
          time.sleep(60)
    def work(run, directory, phase):
      while True:
        Finalized()
        time.sleep(0.01)
    worker._execute = work
    sys.exit(worker.main(["worker", "--phase", "train", sys.argv[1]]))
    """)


def test_a_sigterm_that_lands_in_a_finalizer_still_stops_the_worker(
    tmp_path):
  """Python drops an exception raised in a `__del__` ("Exception ignored
  in"): the stop must not be lost with it."""
  directory = _run_folder(tmp_path)
  proc = _start_worker(directory, _WORKER_IN_A_FINALIZER)
  try:
    _lines_until(proc, "finalizing")
    proc.send_signal(signal.SIGTERM)
    try:
      code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
      code = "still running 20 s after SIGTERM"
  finally:
    proc.kill()
    proc.wait()
  output = proc.stdout.read()
  assert code == -signal.SIGTERM, output
  assert "[worker] stopped by SIGTERM" in output
  assert not (directory / ".lock.owner").exists()


def test_lock_files_respect_the_umask(tmp_path, no_flock):
  previous = os.umask(0o002)
  try:
    processes.FolderLock(str(tmp_path)).acquire("flock").release()
    (tmp_path / "sub").mkdir()
    held = processes.FolderLock(str(tmp_path / "sub"))
    held.acquire("file")
    mode = os.stat(tmp_path / "sub" / ".lock.owner").st_mode & 0o777
    held.release()
  finally:
    os.umask(previous)
  assert os.stat(tmp_path / ".lock").st_mode & 0o777 == 0o664
  assert mode == 0o664


def _read_only(monkeypatch, path):
  """Opening `path` for writing is refused, as for a file of another user."""
  path, real_open = str(path), os.open

  def no_write(file, flags, *args):
    if file == path and flags & os.O_RDWR:
      raise PermissionError(errno.EACCES, "Permission denied", file)
    return real_open(file, flags, *args)

  monkeypatch.setattr(os, "open", no_write)


def test_a_lock_file_this_user_cannot_write_is_still_locked(tmp_path,
                                                            monkeypatch):
  open(tmp_path / ".lock", "w").close()
  _read_only(monkeypatch, tmp_path / ".lock")
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  helpers.assert_second_runner_refused(tmp_path, lock)


_KILLED_HOLDER = textwrap.dedent("""
    import os, sys
    from evaluation import processes
    processes.FolderLock(sys.argv[1]).acquire("sbd_study run")
    os._exit(0)  # Killed: the lock is never released.
    """)


@pytest.mark.parametrize("earlier", ["released", "killed", "older version"])
def test_a_lock_taken_through_a_read_only_file_names_no_earlier_holder(
    tmp_path, monkeypatch, earlier):
  """The name in the file is its last writer's: not the holder's, when the
  holder could only open the file read-only."""
  path = str(tmp_path / ".lock")
  if earlier == "released":
    processes.FolderLock(str(tmp_path)).acquire("sbd_study run").release()
  elif earlier == "killed":
    subprocess.run([sys.executable, "-c", _KILLED_HOLDER, str(tmp_path)],
                   cwd=helpers.REPO, check=True, timeout=60)
  else:
    with open(path, "w") as f:
      f.write("sbd_study run (pid %d on %s)" % (helpers.dead_pid(),
                                                 os.uname().nodename))
  _read_only(monkeypatch, path)
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study report")
  try:
    with pytest.raises(study_lib.StudyError) as raised:
      runner.lock_output_dir(str(tmp_path))
  finally:
    lock.release()
  assert "in use by another runner: another process." in str(raised.value)
  assert "sbd_study run" not in str(raised.value)


def test_a_folder_of_another_user_gets_an_error_that_says_what_to_do(
    tmp_path, monkeypatch):
  def denied(file, flags, *args):
    raise PermissionError(errno.EACCES, "Permission denied", file)

  monkeypatch.setattr(os, "open", denied)
  with pytest.raises(study_lib.StudyError,
                     match=r"Cannot take the lock of .*group-writable"):
    runner.lock_output_dir(str(tmp_path))


def _study(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return study_lib.parse_study(str(path))


def test_a_study_folder_is_reported_only_with_its_own_study(tmp_path):
  text = helpers.study_toml()
  made = _study(tmp_path, "made.toml", text)
  out = str(tmp_path / "out")
  runner.prepare_output_dir(made, out)
  # The same study with a header comment added after the run: accepted.
  commented = _study(tmp_path, "commented.toml",
                     "# Time on 2 cores: 3 min.\n" + text)
  runner.prepare_output_dir(commented, out)
  runner.check_same_study(commented, out)
  other = _study(tmp_path, "other.toml", text.replace("seeds = [0]",
                                                      "seeds = [1]"))
  assert "seeds = [1]" in open(other.source).read()
  with pytest.raises(study_lib.StudyError,
                     match="holds results of a different study"):
    cli._report(other, out, None)  # pylint: disable=protected-access
  with pytest.raises(study_lib.StudyError,
                     match="holds results of a different study"):
    runner.prepare_output_dir(other, out)


def test_two_runners_on_a_new_folder_keep_the_first_study_copy(
    tmp_path, monkeypatch):
  first, second = tmp_path / "first.toml", tmp_path / "second.toml"
  first.write_text("name = 'first'\n")
  second.write_text("name = 'second'\n")
  copy = str(tmp_path / "study.toml")
  real_copyfile = atomic.shutil.copyfile

  def first_runner_wins_meanwhile(source, target):
    # The race: the other runner's copy lands while this one writes its own.
    if not os.path.exists(copy):
      real_copyfile(str(first), copy)
    return real_copyfile(source, target)

  monkeypatch.setattr(atomic.shutil, "copyfile", first_runner_wins_meanwhile)
  assert not atomic.copy_if_absent(str(second), copy)
  assert open(copy).read() == "name = 'first'\n"
  assert sorted(os.listdir(tmp_path)) == ["first.toml", "second.toml",
                                          "study.toml"]


def test_study_files_with_other_value_types_are_other_studies(tmp_path):
  """1 == 1.0 in Python, but the run ids differ (beta1 vs beta1.0)."""
  ints, floats = tmp_path / "a.toml", tmp_path / "b.toml"
  ints.write_text('[sweep]\n"vae.beta" = [1, 2]\n')
  floats.write_text('# a comment\n[sweep]\n"vae.beta" = [1.0, 2.0]\n')
  assert not study_lib.same_study(str(ints), str(floats))
  commented = tmp_path / "c.toml"
  commented.write_text('# measured: 2 h\n[sweep]\n"vae.beta" = [1, 2]\n')
  assert study_lib.same_study(str(ints), str(commented))


def test_a_resumed_steps_seconds_add_up_over_attempts(tmp_path, monkeypatch):
  clock = iter([100.0, 130.0, 200.0, 210.0])  # 30 s, then 10 s.
  monkeypatch.setattr(worker.time, "time", lambda: next(clock))
  with pytest.raises(RuntimeError):
    with worker._timed(str(tmp_path), "train", resumed=True):  # pylint: disable=protected-access
      raise RuntimeError("killed half way")
  with worker._timed(str(tmp_path), "train", resumed=True):  # pylint: disable=protected-access
    pass
  assert atomic.read_json(layout.timings_path(str(tmp_path))) == {
      "train": 40.0}


def test_an_unreadable_timings_file_does_not_hide_the_steps_error(tmp_path):
  # A directory stands for a file that cannot be read (the tests run as
  # root): the step's own error comes through, and the SIGTERM's stop too.
  os.mkdir(layout.timings_path(str(tmp_path)))
  with pytest.raises(RuntimeError, match="the step's own"):
    with worker._timed(str(tmp_path), "mig", resumed=False):  # pylint: disable=protected-access
      raise RuntimeError("the step's own")
  with pytest.raises(worker._Stopped):  # pylint: disable=protected-access
    with worker._timed(str(tmp_path), "train", resumed=True):  # pylint: disable=protected-access
      raise worker._Stopped()  # pylint: disable=protected-access


def _fake_dlib_steps(monkeypatch, evaluate_with_gin):
  """dlib's postprocess and evaluate modules as the worker imports them,
  without TensorFlow; `evaluate_with_gin` stands for dlib's."""
  names = ("disentanglement_lib", "disentanglement_lib.evaluation",
           "disentanglement_lib.evaluation.evaluate",
           "disentanglement_lib.postprocessing",
           "disentanglement_lib.postprocessing.postprocess")
  modules = {name: types.ModuleType(name) for name in names}
  for name, module in modules.items():
    monkeypatch.setitem(sys.modules, name, module)
    parent, _, child = name.rpartition(".")
    if parent:
      setattr(modules[parent], child, module)
  modules[names[2]].evaluate_with_gin = evaluate_with_gin


def test_a_redone_metric_records_the_seconds_of_the_attempt_that_made_it(
    tmp_path, monkeypatch):
  """A metric is redone from scratch after a failure: the failed attempt's
  seconds bought nothing of the result, and would inflate the run's time."""
  directory = str(_run_folder(tmp_path))
  trained = ((layout.model_dir(directory), "train"),
             (layout.postprocessed_dir(directory), "postprocess"))
  for step_dir, kind in trained:
    os.makedirs(os.path.dirname(layout.step_result(step_dir, kind)))
    atomic.write_json(layout.step_result(step_dir, kind), {})
  now = [1000.0]
  monkeypatch.setattr(worker.time, "time", lambda: now[0])
  attempts = []

  def evaluate_with_gin(unused_input_dir, output_dir, *unused_args):
    attempts.append(output_dir)
    if len(attempts) == 1:
      now[0] += 7200.0
      raise MemoryError("out of memory after 2 h")
    now[0] += 600.0
    result = layout.step_result(output_dir, "evaluation")
    os.makedirs(os.path.dirname(result))
    atomic.write_json(result, {"discrete_mig": 0.1})

  _fake_dlib_steps(monkeypatch, evaluate_with_gin)
  monkeypatch.setattr(worker, "_done_record", lambda run, directory: {})
  run = dataclasses.replace(_run(), metric_configs=(("mig", "mig.gin"),))
  with pytest.raises(MemoryError):
    worker.evaluate(run, directory)
  worker.evaluate(run, directory)
  assert len(attempts) == 2
  assert atomic.read_json(layout.timings_path(directory)) == {"mig": 600.0}


def test_an_attempt_that_dies_before_its_worker_starts_is_its_own(tmp_path):
  """A SLURM job whose set-up line fails never runs the worker: the runner
  marks the attempt when it submits it."""
  directory = _run_folder(tmp_path)
  (directory / layout.ERROR_FILE).write_text("ValueError: an old one\n")
  (directory / layout.WORKER_LOG).write_text(
      "%s (pid 1)\nValueError: an old gin typo, fixed since\n" %
      worker.ATTEMPT_MARKER)
  task = base.Task("r", "train", ("true",), str(directory / layout.WORKER_LOG))
  runner._mark_attempt(task)  # pylint: disable=protected-access
  outcome = runner._ended(str(tmp_path), _run(), base.exit_error(1))  # pylint: disable=protected-access
  assert outcome.error == "worker exited with status 1"
  assert not outcome.error_log


def test_a_marker_after_an_attempt_cut_mid_line_is_found(tmp_path):
  """Output to a file is block-buffered: a killed attempt may end mid-line,
  and the next attempt's marker goes on from there."""
  directory = _run_folder(tmp_path)
  (directory / layout.WORKER_LOG).write_text(
      "%s (pid 1)\nValueError: an old gin typo, fixed since\nstep 12 of 30"
      "%s (pid 2)\n[worker] train phase of r starts at 1.0 (pid 2)\n" % (
          worker.ATTEMPT_MARKER, worker.ATTEMPT_MARKER))
  outcome = runner._ended(str(tmp_path), _run(), base.exit_error(-9))  # pylint: disable=protected-access
  assert outcome.error == ("worker killed by SIGKILL; its last output: "
                           "[worker] train phase of r starts at 1.0 (pid 2)")
  assert not outcome.error_log


def test_the_runners_marker_starts_a_line_of_its_own(tmp_path):
  directory = _run_folder(tmp_path)
  log = directory / layout.WORKER_LOG
  log.write_text("%s (pid 1)\nValueError: an old one\nstep 12 of 30" %
                 worker.ATTEMPT_MARKER)
  task = base.Task("r", "train", ("true",), str(log))
  runner._mark_attempt(task)  # pylint: disable=protected-access
  runner._mark_attempt(task)  # pylint: disable=protected-access
  assert log.read_text().splitlines()[2:] == [
      "step 12 of 30",
      worker.ATTEMPT_MARKER + " (train phase, submitted by the runner)",
      worker.ATTEMPT_MARKER + " (train phase, submitted by the runner)"]
  runner._mark_attempt(base.Task("r", "train", ("true",),  # pylint: disable=protected-access
                                 str(directory / "new.log")))
  assert (directory / "new.log").read_text() == (
      worker.ATTEMPT_MARKER + " (train phase, submitted by the runner)\n")


def test_the_runners_signal_handlers_are_put_back_after_a_run(tmp_path):
  lock = processes.FolderLock(str(tmp_path)).acquire("sbd_study run")
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  previous = runner._stop_on_signals(object(), lock)  # pylint: disable=protected-access
  assert signal.getsignal(signal.SIGTERM) not in before
  runner._restore_signals(previous)  # pylint: disable=protected-access
  lock.release()
  assert (signal.getsignal(signal.SIGTERM),
          signal.getsignal(signal.SIGINT)) == before


def test_a_relative_cache_folder_reaches_workers_as_an_absolute_one(
    tmp_path, monkeypatch):
  """Ray and SLURM workers may start elsewhere: the same cache, not a new."""
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("SBD_PLUGIN_CACHE", "rel/cache")
  settings = base.Settings(output_dir=str(tmp_path), portable=False)
  env = base.worker_env(base.task_env(settings))
  assert env["SBD_PLUGIN_CACHE"] == str(tmp_path / "rel" / "cache")
  monkeypatch.setenv("SBD_PLUGIN_CACHE", str(tmp_path / "abs"))
  assert base.task_env(settings) == ()


def test_a_folder_held_by_a_report_says_so(tmp_path):
  lock = runner.lock_output_dir(str(tmp_path), "sbd_study report")
  try:
    with pytest.raises(study_lib.StudyError,
                       match=r"in use by another runner: sbd_study report "
                       r"\(pid %d" % os.getpid()):
      runner.lock_output_dir(str(tmp_path))
  finally:
    lock.release()
