"""The exceptions a user can cause.

Everything a user can get wrong (a bad range, an unknown task, an impossible config, an existing output
folder) is raised as :class:`ConfigError` with one sentence that says what to change; a storage fault (a
read-only or full output location) is a :class:`StorageError`, which is not a mistake in the request but a state
of the machine the user can fix. Both are a :class:`UserError`: the command-line entry points catch that, print
the sentence without a traceback and exit with code 2.
"""

import argparse


def one_line(message: str) -> str:
    """A message as one printable line: control characters from user input (newlines, NUL, ...) are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message).strip())


class UserError(ValueError):
    """Something the user can fix, said in one line (exit code 2 at the command line)."""

    def __init__(self, message: str = ""):
        super().__init__(one_line(message))


class ConfigError(UserError):
    """A mistake in what the user asked for (flags, config, paths, run ids); the message says what to change."""


class StorageError(UserError):
    """The output location cannot take what a scan must write (read-only, full, gone); the message says what was
    kept and how to go on."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse for jgrok's command lines: a usage mistake is a ConfigError (one sentence, exit 2), not argparse's
    usage dump."""

    def error(self, message):
        raise ConfigError(f"{message[0].upper()}{message[1:]} (see --help).")
