"""Object ids with OpenAI's prefixes, and the clock."""

from __future__ import annotations

import secrets
import string
import threading
import time

_ALPHABET = string.ascii_letters + string.digits
_lock = threading.Lock()
_last_ns = 0


def new_id(prefix: str) -> str:
    """`asst_` + 24 random alphanumerics, as OpenAI's ids look."""
    sep = "" if prefix.endswith(("_", "-")) else "_"
    return prefix + sep + "".join(secrets.choice(_ALPHABET) for _ in range(24))


def now() -> float:
    return time.time()


def seq() -> int:
    """A strictly increasing nanosecond clock: list order is creation order."""
    global _last_ns
    with _lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns
