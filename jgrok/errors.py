"""The one exception a user can cause.

Everything a user can get wrong (a bad range, an unknown task, an impossible config, an existing output
folder) is raised as :class:`ConfigError` with one sentence that says what to change. The command-line
entry points print it without a traceback and exit with code 2.
"""


class ConfigError(ValueError):
    """A mistake in what the user asked for; the message says what to change."""
