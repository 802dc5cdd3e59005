"""The lab's user-facing error: one line for the terminal, exit code 2 in the CLI."""


class UserError(ValueError):
    """A mistake in what the user asked for (unknown name, bad value, missing file).

    The message is one line that names the problem and the valid choices; the CLI prints it
    without a traceback and exits with code 2.
    """
