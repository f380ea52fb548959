"""Object ids with OpenAI's prefixes, and the clock."""

from __future__ import annotations

import os
import string
import threading
import time

_ALPHABET = string.ascii_letters + string.digits
_lock = threading.Lock()
_last_ns = 0


def new_id(prefix: str) -> str:
    """`asst_` + 24 random alphanumerics (about 143 bits), as OpenAI's ids look."""
    sep = "" if prefix.endswith(("_", "-")) else "_"
    n = int.from_bytes(os.urandom(18), "big")
    chars = []
    for _ in range(24):
        n, r = divmod(n, 62)
        chars.append(_ALPHABET[r])
    return prefix + sep + "".join(chars)


def now() -> float:
    return time.time()


def seq() -> int:
    """A strictly increasing nanosecond clock: list order is creation order."""
    global _last_ns
    with _lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns
