"""Command-line entry points: absl's `app.run`, with a problem in the input (a bad flag, config
key or preset, a missing workdir or file, a refused option, a word left over after the flags)
reported as one line that names it, exit code 2, instead of a traceback; Ctrl-C is one line too
(exit 130). `--traceback` (or `--verbose_libraries`) keeps the traceback for debugging."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable

from absl import app, flags

from onesearch_jax import quiet

TRACEBACK = flags.DEFINE_bool("traceback", False, "On an input error, show the whole traceback "
                              "instead of one line.")
COMPILATION_CACHE = flags.DEFINE_string(
    "compilation_cache", os.path.join("~", ".cache", "onesearch_jax", "jax"),
    "JAX's persistent compilation cache: a rerun, a resumed run or the next stage loads the "
    "compiled steps it has already built instead of compiling them again ('' turns it off).")
# What the package raises for input it refuses (each with a message naming the problem); OSError
# also covers a --config file that is not there (ml_collections raises it when first read),
# ImportError an optional package a flag asks for, FloatingPointError a NaN loss that stopped a
# run (train/loop.py's NonFiniteLossError, with the step and the last good checkpoint).
INPUT_ERRORS = (OSError, ValueError, KeyError, ImportError, FloatingPointError, app.UsageError)
EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT


def error_line(error: BaseException) -> str:
    """The one line a person reads: the error's own message (a KeyError's without quotes; of a
    message that carries a traceback, as a config file's error does, its head and last line)."""
    while isinstance(error, (KeyError, AttributeError)) and error.args:
        error = error.args[0]  # ml_collections wraps a KeyError in an AttributeError
    message = str(error)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if "Traceback (most recent call last):" in message:
        head = message.split("Traceback (most recent call last):")[0].strip()
        lines = [head, lines[-1]] if head else lines[-1:]
    return "error: " + (" ".join(lines) or type(error).__name__)


def require_numbers(flag, kind: type = float) -> None:
    """A `DEFINE_list` flag whose items must parse as `kind`: a bad item is refused at parsing,
    naming the flag (instead of a bare "could not convert string" from wherever it is read)."""
    def numbers(values) -> bool:
        try:
            [kind(v) for v in values or ()]
        except ValueError:
            return False
        return True
    flags.register_validator(flag.name, numbers, f"--{flag.name} takes comma-separated "
                             f"{'integers' if kind is int else 'numbers'}")


HELP_FLAGS = ("help", "?", "helpshort", "helpfull", "helpxml")  # absl's, with - or --


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing; a bad flag, config file, preset or `--config.x.y` override (which
    ml_collections reports as an AttributeError or KeyError) is one line and exit code 2; asked
    for help, the usage is printed and the exit code is 0 (absl's is 1, which reads as a
    failure to a shell or a script)."""
    try:
        return flags.FLAGS(argv)
    except SystemExit as e:
        if e.code == 1 and any(a.startswith("-") and a.lstrip("-").split("=")[0] in HELP_FLAGS
                               for a in argv[1:]):
            sys.exit(0)
        raise
    except (flags.Error, AttributeError, KeyError, ValueError, TypeError) as e:
        if "--traceback" in argv or "--verbose_libraries" in argv:
            raise
        field = isinstance(e, (AttributeError, KeyError))
        what, where = (("no such config field ", "the config file lists its fields") if field
                       else ("", "--helpshort lists the flags"))
        sys.stderr.write(f"{error_line(e).replace('error: ', 'error: ' + what, 1)} "
                         f"({where})\n")
        sys.exit(EXIT_INPUT_ERROR)


CACHE_MAX_BYTES = 4 * 2 ** 30


def enable_compilation_cache(path: str) -> None:
    """Compiles of a second or more (a train step: 10-60 s; minutes for `base` on a TPU) are
    written to `path` and loaded by any later process that compiles the same program with the
    same jax, up to CACHE_MAX_BYTES (the least recently used go first); '' leaves JAX's default
    (no cache)."""
    if not path:
        return
    import jax
    path = os.path.expanduser(path)
    repair_compilation_cache(path)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


def repair_compilation_cache(path: str) -> int:
    """Gives every entry of the cache at `path` that lacks one its '-atime' file (the entry's
    modification time); returns how many. JAX's size-limited cache reads every entry's atime
    before each write, so one entry without it (its process killed between the two files, or
    a writer without the size limit) made every later write fail, with a warning per program."""
    if "://" in path or not os.path.isdir(path):
        return 0
    repaired = 0
    for name in os.listdir(path):
        if not name.endswith("-cache"):
            continue
        atime = os.path.join(path, name[: -len("-cache")] + "-atime")
        if not os.path.exists(atime):
            try:  # best effort: a read-only or shared cache another process tidies is no error
                stamp = os.stat(os.path.join(path, name)).st_mtime_ns
                with open(atime, "wb") as f:
                    f.write(stamp.to_bytes(8, "little"))
            except OSError:
                continue
            repaired += 1
    return repaired


# Functions in which Python prints "Exception ignored" and drops an exception raised there or in
# anything they call: JAX's hook that runs at every garbage collection, and finalizers.
_SWALLOWING_FRAMES = frozenset({"_xla_gc_callback", "__del__"})
REDELIVER_SECONDS = 0.05
_redelivery: list[threading.Timer] = []  # the pending re-sent Ctrl-C, if any


def _inside_swallowing_frame(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name in _SWALLOWING_FRAMES:
            return True
        frame = frame.f_back
    return False


def _on_interrupt(signum, frame) -> None:
    """Python's Ctrl-C, except where the KeyboardInterrupt would be dropped (a long evaluation
    collects garbage often, so a Ctrl-C that landed in JAX's gc hook was ignored): there the
    signal is sent again a moment later, once the hook has returned."""
    if _inside_swallowing_frame(frame):
        timer = threading.Timer(REDELIVER_SECONDS, os.kill, (os.getpid(), signum))
        timer.daemon = True
        _redelivery[:] = [timer]
        timer.start()
        return
    _redelivery.clear()
    raise KeyboardInterrupt


@contextlib.contextmanager
def _interrupts_not_dropped():
    """`_on_interrupt` for the run, only where Python's own Ctrl-C is in place (not under a
    debugger or a caller's handler, and only in the main thread, the one place a handler can be
    installed); the previous handler is back afterwards. A Ctrl-C still waiting to be sent
    again when the run ends stops it there (not in the interpreter's shutdown)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        pending = [t for t in _redelivery if t.is_alive()]
        _redelivery.clear()
        for timer in pending:
            timer.cancel()
        if pending:
            raise KeyboardInterrupt


def run(main: Callable[[list[str]], object], compilation_cache: bool = True) -> None:
    """`app.run(main)` with one-line input errors (exit 2) and the compilation cache on
    (`compilation_cache=False`: a tool that compiles ahead of time for devices it does not
    have, whose executables this process could not load back from the cache)."""

    def debugging() -> bool:
        return flags.FLAGS.is_parsed() and (TRACEBACK.value or quiet.VERBOSE_LIBRARIES.value)

    def guarded(argv):
        try:
            if len(argv) > 1:  # an unquoted value's other words, or a flag without its --
                raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])} (quote a value "
                                     "with spaces; flags start with --)")
            if compilation_cache:
                enable_compilation_cache(COMPILATION_CACHE.value)
            with _interrupts_not_dropped():
                return main(argv)
        except INPUT_ERRORS as e:
            if debugging():
                raise
            sys.stderr.write(f"{error_line(e)} (--traceback shows where)\n")
            sys.exit(EXIT_INPUT_ERROR)
        except KeyboardInterrupt:
            if debugging():
                raise
            sys.stderr.write("interrupted: what was written stays (a training run resumes from "
                             "its last checkpoint when the same command runs again)\n")
            sys.exit(EXIT_INTERRUPTED)

    for name in ("traceback", "verbose_libraries", "compilation_cache"):  # in --helpshort too
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
    app.run(guarded, flags_parser=_parse_flags)
