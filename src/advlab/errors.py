"""User-facing errors.

Anything a user can get wrong (a name, a path, a number out of range) raises
:class:`AdvlabError` with one sentence that names the problem and the fix. The CLI
prints that sentence and exits non-zero without a traceback; programming errors
inside advlab stay ordinary exceptions with their tracebacks.
"""

from __future__ import annotations


class AdvlabError(Exception):
    """A mistake in the user's input, reported as one line."""


def check(condition: bool, message: str) -> None:
    """Raise :class:`AdvlabError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AdvlabError(message)
