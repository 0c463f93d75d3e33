"""Errors the engine raises for problems a user can fix (bad files, bad sizes).

Each class says whose fault an error is; the HTTP API turns the class into a status (an invalid value
is a 400, a missing resource that a route names is a 404), never the message's words.
"""


class EngineError(Exception):
    """Base class: the message is written for the user and names the file or value at fault."""


class ModelLoadError(EngineError):
    """A checkpoint, VAE or config could not be read or does not fit the model it claims to be."""


class UnsafeFileError(ModelLoadError):
    """A pickle (.ckpt/.pt) holds objects outside the weights-only allow-list."""


class InvalidRequestError(EngineError):
    """A generation parameter is out of range (size not a multiple of 8, steps < 1, ...), or names
    something that does not exist (a sampler, a script, a checkpoint in a request body)."""


class NotFoundError(EngineError):
    """The resource a request addresses (by its path, e.g. a file or task id in the URL) does not
    exist. A bad name inside a request body is an InvalidRequestError, not this."""


class Interrupted(EngineError):
    """The job was interrupted by the user; partial results may exist."""


class NansException(EngineError):
    """The UNet or the VAE produced NaN or infinite values: the image would be black. A1111's name, so
    extensions that catch `modules.devices.NansException` catch it. `where` is "unet" or "vae"."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.where = where
