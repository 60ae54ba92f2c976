"""The one user-facing error type: bad input that the CLI reports in a paragraph with exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: what is wrong, where, and how to fix it.

    The CLI prints ``str(err)`` (one paragraph) to stderr and exits with code 2; it never prints
    a traceback for this type. Build messages with :func:`user_error` to keep them uniform.
    """

    exit_code = 2


def user_error(what: str, where: str | None = None, fix: str | None = None) -> UserError:
    """Return a :class:`UserError` whose message reads ``what (where). fix``."""
    parts = [what.rstrip(". ")]
    if where:
        parts[0] += f" ({where})"
    message = parts[0] + "."
    if fix:
        message += " " + fix.rstrip() + ("" if fix.rstrip().endswith(".") else ".")
    return UserError(message)
