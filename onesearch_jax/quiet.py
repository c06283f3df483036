"""Library chatter (absl and orbax INFO lines, tfds progress bars) stays off unless
`--verbose_libraries`: what a person reads is our own progress lines and tables."""
import logging

from absl import flags
from absl import logging as absl_logging

VERBOSE_LIBRARIES = flags.DEFINE_bool("verbose_libraries", False,
                                      "Show library INFO logs and tfds progress bars.")
LOGGERS = ("absl", "orbax", "tensorflow_datasets", "etils", "jax")


def quiet_libraries() -> None:
    """Call first thing in an experiment's main (after absl parsed the flags)."""
    if VERBOSE_LIBRARIES.value:
        return
    absl_logging.set_verbosity(absl_logging.WARNING)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    import tensorflow_datasets as tfds  # lazily: a heavy import
    tfds.disable_progress_bar()
