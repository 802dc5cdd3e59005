"""The lab's user-facing error (one line for the terminal, exit code 2 in the CLI), and the
interrupt a termination request (SIGTERM) becomes."""


class UserError(ValueError):
    """A mistake in what the user asked for (unknown name, bad value, missing file).

    The message is one line that names the problem and the valid choices; the CLI prints it
    without a traceback and exits with code 2.
    """


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's ``KeyboardInterrupt`` would be: the run stops at its next
    consistent point (the epoch's checkpoint and rows written together) and the CLI exits with
    143 (128 + SIGTERM) instead of 130."""

    exit_code = 143
