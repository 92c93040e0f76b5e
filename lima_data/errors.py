"""Errors that lima-data reports to the user as a clear message instead of a traceback."""


class LimaDataError(Exception):
    """Base class: the CLI prints ``str(error)`` and exits with status 1."""


class InputError(LimaDataError):
    """Bad input that cannot be read at all: names the file (and line or row when known) and what is wrong.

    Args:
        path: the offending file, as given by the user.
        message: what is wrong, in words.
        line: 1-based line (or row) number when the problem has a position.
    """

    def __init__(self, path, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class RecipeError(LimaDataError):
    """A recipe that cannot be loaded or fails validation; the message names the recipe file and the key."""


class ShortfallError(LimaDataError):
    """Raised in strict mode when a quota cannot be filled from the inputs."""
