"""Command-line input errors: one line naming the problem, exit code 2; --traceback shows where."""
import subprocess
import sys

import pytest
from absl import app

from onesearch_jax import cli


def _run(*args):
    out = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    return out.returncode, [line for line in out.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize("args, named", [
    (("experiments.evaluate", "--workdirr=x"), "Unknown command line flag 'workdirr'"),
    (("experiments.evaluate", "--workdir=/no/such/workdir"),
     "no workdir /no/such/workdir (no such directory)"),
    (("experiments.train", "--config=configs/distill.py:tiny:v1", "--config.train.stepz=5",
      "--workdir=/tmp/unused"), "no such config field 'stepz'"),
    (("experiments.train", "--config=configs/distill.py:nosuch:v1", "--workdir=/tmp/unused"),
     "unknown distill preset 'nosuch'"),
    (("benchmarks.accelerator_suite", "--smoke"), "--out_dir is required"),
    (("experiments.build_sids", "--config=configs/sft.py:tiny", "--workdir=/tmp/unused"),
     "not a SID config: it lacks ['embedder', 'keyword_enhance', 'khqe']"),
    (("experiments.train", "--config=configs/nosuch.py:tiny", "--workdir=/tmp/unused"),
     "No such file or directory: 'configs/nosuch.py'"),
    (("experiments.search", "--workdir=/tmp/unused", "--query", "sugar-free", "dark"),
     "unexpected arguments: dark (quote a value with spaces"),
    (("experiments.search", "--workdir=/tmp/unused", "--query=a", "--mesh=1,x"),
     "--mesh takes comma-separated integers"),
])
def test_an_input_error_is_one_line_and_exit_code_2(args, named):
    code, lines = _run(*args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0]


def test_traceback_flag_keeps_the_traceback():
    code, lines = _run("experiments.evaluate", "--workdir=/no/such/workdir", "--traceback")
    assert code == 1 and lines[0].startswith("Traceback") and "FileNotFoundError" in lines[-1]


@pytest.mark.parametrize("help_flag", ["--helpshort", "--help", "-helpshort", "--helpfull"])
def test_asking_for_help_prints_the_flags_and_exits_0(help_flag):
    out = subprocess.run([sys.executable, "-m", "experiments.search", help_flag],
                         capture_output=True, text=True, cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.returncode == 0 and "--workdir" in out.stdout


def test_error_line_by_hand():
    assert cli.error_line(KeyError("no key 'x'")) == "error: no key 'x'"
    assert cli.error_line(AttributeError(KeyError("'x'\nDid you mean 'y'?"))) == \
        "error: 'x' Did you mean 'y'?"
    carried = ("flag --config=c.py:p: Error whilst parsing config file: Traceback (most recent "
               "call last):\n  File \"c.py\", line 3\nValueError: unknown preset 'p'")
    assert cli.error_line(app.UsageError(carried)) == \
        "error: flag --config=c.py:p: Error whilst parsing config file: ValueError: unknown preset 'p'"


def _compile_in_a_process(cache: str) -> str:
    script = ("import jax, jax.numpy as jnp\n"
              "from onesearch_jax import cli\n"
              f"cli.enable_compilation_cache({cache!r})\n"
              "jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)\n"
              "print(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).sum())\n")
    return subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                          text=True, cwd=__file__.rsplit("/tests/", 1)[0]).stderr


def test_compilation_cache_is_written_and_off_when_empty(tmp_path):
    cache = tmp_path / "cache"
    _compile_in_a_process(str(cache))
    written = sorted(p.name for p in cache.iterdir())
    assert written, "the compiled program was not cached"
    _compile_in_a_process(str(cache))  # the same program, loaded: nothing new written
    assert sorted(p.name for p in cache.iterdir()) == written
    import jax
    before = jax.config.jax_compilation_cache_dir
    cli.enable_compilation_cache("")  # off: JAX's setting left as it was
    assert jax.config.jax_compilation_cache_dir == before


def test_an_entry_without_its_access_time_is_repaired(tmp_path):
    """An entry left without '-atime' (a process killed between the two files) made JAX's
    size-limited cache fail every later write, warning 'Error writing persistent compilation
    cache entry' for each program."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "jit_f-0123-cache").write_bytes(b"old program")
    (cache / "jit_g-4567-cache").write_bytes(b"whole entry")
    (cache / "jit_g-4567-atime").write_bytes((5).to_bytes(8, "little"))
    assert cli.repair_compilation_cache(str(cache)) == 1
    stamp = int.from_bytes((cache / "jit_f-0123-atime").read_bytes(), "little")
    assert stamp == (cache / "jit_f-0123-cache").stat().st_mtime_ns
    assert int.from_bytes((cache / "jit_g-4567-atime").read_bytes(), "little") == 5
    assert cli.repair_compilation_cache(str(cache)) == 0
    (cache / "jit_f-0123-atime").unlink()
    err = _compile_in_a_process(str(cache))
    assert "Error writing persistent compilation cache" not in err, err
    assert any(p.name.startswith("jit_") and p.name != "jit_f-0123-cache"
               and p.name.endswith("-cache") for p in cache.iterdir())


def test_ahead_of_time_tools_run_without_the_cache(monkeypatch):
    enabled, ran = [], []
    monkeypatch.setattr(cli, "enable_compilation_cache", enabled.append)
    monkeypatch.setattr(cli.app, "run", lambda main, flags_parser: main(["prog"]))
    cli.run(ran.append, compilation_cache=False)  # experiments.aot_compile, benchmarks.gpu_aot
    assert enabled == [] and ran == [["prog"]]


def _run_in_process(monkeypatch, main, argv=("prog",)):
    monkeypatch.setattr(cli.app, "run", lambda guarded, flags_parser: guarded(list(argv)))
    cli.run(main, compilation_cache=False)


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    def interrupted(argv):
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as stop:
        _run_in_process(monkeypatch, interrupted)
    assert stop.value.code == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.startswith("interrupted: what was written stays")


_GC_HOOK_SCRIPT = """\
import gc, os, signal
from onesearch_jax import cli
# Python's own Ctrl-C, as a terminal's process has (a pytest-xdist worker's child inherits
# SIGINT ignored)
signal.signal(signal.SIGINT, signal.default_int_handler)
sent = []
def interrupt_here():  # the signal is handled in here, a function the hook calls
    sent.append(os.kill(os.getpid(), signal.SIGINT))
    sum(range(1000))
def _xla_gc_callback(phase, info):  # JAX's name for its hook
    if not sent:
        interrupt_here()
def main(argv):
    gc.callbacks.append(_xla_gc_callback)
    gc.collect()
    while {keep_running}:
        gc.collect()
cli.run(main, compilation_cache=False)
"""


@pytest.mark.parametrize("keep_running", [True, False], ids=["run_goes_on", "run_ends_at_once"])
def test_ctrl_c_that_lands_in_jaxs_gc_hook_still_stops_the_run(keep_running):
    """Python drops an exception raised in a gc callback (or anything it calls); the handler
    sends the signal again, and a run that ends before it is sent stops with it all the same."""
    out = subprocess.run([sys.executable, "-c", _GC_HOOK_SCRIPT.format(keep_running=keep_running)],
                         capture_output=True, text=True, timeout=60,
                         cwd=__file__.rsplit("/tests/", 1)[0])
    assert out.returncode == cli.EXIT_INTERRUPTED, out.stderr
    assert "Exception ignored" not in out.stderr and out.stderr.startswith("interrupted:")


def test_a_nan_loss_is_one_line_and_exit_code_2(monkeypatch, capsys):
    from onesearch_jax.train.loop import NonFiniteLossError

    def diverged(argv):
        raise NonFiniteLossError("non-finite loss nan at step 3; stopped without saving it")
    with pytest.raises(SystemExit) as stop:
        _run_in_process(monkeypatch, diverged)
    assert stop.value.code == cli.EXIT_INPUT_ERROR
    assert capsys.readouterr().err.startswith("error: non-finite loss nan at step 3")


def test_leftover_arguments_stop_before_main_runs(monkeypatch, capsys):
    ran = []
    with pytest.raises(SystemExit) as stop:
        _run_in_process(monkeypatch, ran.append, argv=("prog", "noconstrained"))
    assert stop.value.code == cli.EXIT_INPUT_ERROR and ran == []
    assert "unexpected arguments: noconstrained" in capsys.readouterr().err
