"""The exceptions a user can cause.

Everything a user can get wrong (a bad range, an unknown task, an impossible config, an existing output
folder) is raised as :class:`ConfigError` with one sentence that says what to change; a storage fault (a
read-only or full output location) is a :class:`StorageError`. The command-line entry points print the sentence
without a traceback and exit with code 2.
"""

import argparse


def one_line(message: str) -> str:
    """A message as one printable line: control characters from user input (newlines, NUL, ...) are escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message).strip())


class ConfigError(ValueError):
    """A mistake in what the user asked for; the message (always one line) says what to change."""

    def __init__(self, message: str = ""):
        super().__init__(one_line(message))


class StorageError(ConfigError):
    """The output location cannot take what a scan must write (read-only, full, gone); the message says what was
    kept and how to go on."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse for jgrok's command lines: a usage mistake is a ConfigError (one sentence, exit 2), not argparse's
    usage dump."""

    def error(self, message):
        raise ConfigError(f"{message[0].upper()}{message[1:]} (see --help).")
