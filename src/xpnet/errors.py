"""Errors a user can act on.

Every failure caused by input (files, arguments, data, devices) raises an ``XpnetError`` subclass whose message
says what was wrong, where, and what to do. The CLI prints the message and exits non-zero, without a traceback.
"""


class XpnetError(Exception):
    """Base class for every error xpnet raises on purpose.

    The message carries the facts, in library terms; ``hint``, when given, is the command line's advice (which
    ``--flag`` to change), which the CLI adds and a Python caller can ignore.
    """

    exit_code = 2

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class ConfigError(XpnetError, ValueError):
    """An unknown name or an invalid setting (activation, loss, optimizer, shape, option)."""


class DataError(XpnetError, ValueError):
    """A data file or folder is missing, truncated, corrupt or inconsistent."""


class ModelFileError(XpnetError, ValueError):
    """A saved model or checkpoint cannot be read."""


class ExportError(XpnetError, ValueError):
    """A model cannot be written in another framework's format (a layer or activation it has no form for)."""


class TrainingError(XpnetError, RuntimeError):
    """Training cannot go on (for example the loss became NaN or infinite)."""


class DeviceError(XpnetError, RuntimeError):
    """The requested device is not usable (no GPU, no CuPy, driver error, out of device memory)."""
