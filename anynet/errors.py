"""Exceptions raised by anynet.

Every message names the offending argument, what was expected and what arrived,
so that a user can fix the call without reading anynet's source.
"""

from __future__ import annotations

__all__ = ["AnynetError", "InputError", "BackendError", "DivergenceError"]


class AnynetError(Exception):
    """Base class of every exception anynet raises on purpose."""


class InputError(AnynetError, ValueError, TypeError):
    """A public function received an argument it cannot use.

    Subclasses both ``ValueError`` and ``TypeError`` so that callers catching
    either of the built-in exceptions keep working.
    """


class BackendError(InputError):
    """A backend or device was asked for that is unknown, missing or mismatched."""


class DivergenceError(AnynetError, FloatingPointError):
    """Training produced a non-finite loss; the network keeps its last finite parameters."""
