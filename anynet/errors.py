"""Exceptions raised by anynet.

Every message names the offending argument, what was expected and what arrived,
so that a user can fix the call without reading anynet's source.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AnynetError",
    "InputError",
    "BackendError",
    "DivergenceError",
    "NumericalError",
    "CheckpointError",
    "CheckpointNotFoundError",
]


class AnynetError(Exception):
    """Base class of every exception anynet raises on purpose."""


class InputError(AnynetError, ValueError, TypeError):
    """A public function received an argument it cannot use.

    Subclasses both ``ValueError`` and ``TypeError`` so that callers catching
    either of the built-in exceptions keep working.
    """


class BackendError(InputError):
    """A backend or device was asked for that is unknown, missing or mismatched."""


class NumericalError(AnynetError, FloatingPointError):
    """A computation on finite inputs overflowed to infinity or NaN.

    anynet raises this rather than return a NaN: the message says what overflowed.
    """


class DivergenceError(NumericalError):
    """Training produced a non-finite loss; the network keeps its last finite parameters.

    Attributes
    ----------
    params : dict
        Those last finite parameters, as set on the network (when ``fit`` raised it).
    history : History
        The run's history up to the epoch before the loss stopped being finite.
    """

    params: dict[str, Any]
    history: Any


class CheckpointError(AnynetError, ValueError):
    """A checkpoint file cannot be loaded.

    Raised for files that are missing, unreadable, truncated, corrupted, of an unknown
    format version, internally inconsistent, pickle-bearing, or not anynet checkpoints
    at all; the message names the file and the problem.
    """


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist.

    Both a :class:`CheckpointError` (so ``except anynet.AnynetError`` sees it) and the
    built-in ``FileNotFoundError`` (so ``except FileNotFoundError`` / ``OSError`` code
    written for ``open`` keeps working).
    """
