"""Library chatter (absl and orbax INFO lines, tfds progress bars) stays off unless
`--verbose_libraries`: what a person reads is our own progress lines and tables."""
import contextlib
import logging
import os

from absl import flags
from absl import logging as absl_logging

VERBOSE_LIBRARIES = flags.DEFINE_bool("verbose_libraries", False,
                                      "Show library INFO logs and tfds progress bars.")
LOGGERS = ("absl", "orbax", "tensorflow_datasets", "etils", "jax")
_quiet = False  # set by quiet_libraries(): an experiment asked for our lines alone


def quiet_libraries() -> None:
    """Call first thing in an experiment's main (after absl parsed the flags)."""
    global _quiet
    if VERBOSE_LIBRARIES.value:
        return
    _quiet = True
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    import tensorflow_datasets as tfds  # lazily: a heavy import
    tfds.disable_progress_bar()


@contextlib.contextmanager
def library_prints():
    """Swallows what a library prints to stdout on its own (tfds' "Downloading and preparing
    dataset ..." lines, which no logger controls) once `quiet_libraries()` ran without
    --verbose_libraries; a no-op otherwise (tests, library use)."""
    if not _quiet:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield
