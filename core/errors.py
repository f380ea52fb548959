"""Errors of the core package, the part the API and the workers share.

    CoreError
    ├── Conflict      a write a unique index refused (a second active run on a thread, a second
    │                 response on a conversation): nothing of it was written
    ├── BadCursor     a list's `after` or `before` names no object of the list; API: 400
    ├── TooLarge      a payload passes its configured cap: an upload past max_file_bytes, a
    │                 request body past max_request_bytes (`param` names the request's field); API: 413
    └── NotMigrated   the database schema is behind the code: run `assistd migrate`

The API answers TooLarge in its one exception handler (api/errors.py), in OpenAI's words.
"""

from __future__ import annotations


class CoreError(Exception):
    """Base class of every error this package raises on purpose."""


class Conflict(CoreError):
    """A unique index refused the write; nothing of it was written."""


class BadCursor(CoreError):
    """A list's cursor (`param`: after or before) names no object of the list."""

    def __init__(self, param: str, cursor: str) -> None:
        super().__init__(f"Invalid '{param}': no object with id '{cursor}' in this list.")
        self.param = param


class TooLarge(CoreError):
    """`what` is larger than `limit` bytes."""

    def __init__(self, what: str, limit: int, *, param: str | None = None) -> None:
        super().__init__(f"{what} is too large: the limit is {limit} bytes.")
        self.limit, self.param = limit, param


class NotMigrated(CoreError, RuntimeError):
    """The database schema is behind the code: run `assistd migrate` (still a RuntimeError, as
    it was before it joined this tree)."""
