"""What goes into and comes out of an execution."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO


@dataclass
class InputFile:
    """A file to appear as /mnt/data/<name>; copied once per session (remembered by file_id).

    Only the name's last part is used; a name that is empty, `.` or `..` becomes the file id.
    `data` is the bytes, or a function that reads them: called (in a thread) only when the
    session does not have the file yet, so a session's files are not read again from storage at
    every execution."""

    file_id: str
    name: str
    data: bytes | Callable[[], bytes]

    async def read(self) -> bytes:
        if isinstance(self.data, bytes):
            return self.data
        return await asyncio.to_thread(self.data)


@dataclass
class OutputFile:
    """A file under /mnt/data created or changed by the execution, e.g. "/mnt/data/out.csv".

    `data` is a spooled temporary file (on disk past a megabyte), positioned at its start:
    read it in chunks; Execution.close() closes it.
    """

    path: str
    size: int
    data: IO[bytes]


@dataclass
class Execution:
    """The outcome of one execute().

    status: "ok"; "error" (the code raised: traceback in logs); "timeout" (wall time over: the code
    was interrupted and the session kept, or, if it did not stop, the session was reset);
    "memory" (the code's interpreter or its container was OOM-killed: session reset); "crashed"
    (either died otherwise: session reset). A huge output is not a status: logs are cut with a marker.
    reset: this session key had a session before, but it was lost (expired, container gone, other
    engine): the code ran in a fresh interpreter and the model should be told.
    """

    status: str
    logs: str
    images: list[bytes] = field(default_factory=list)  # PNG, one per matplotlib figure
    files: list[OutputFile] = field(default_factory=list)
    reset: bool = False

    def close(self) -> None:
        """Release the output files' temporary copies."""
        for out in self.files:
            out.data.close()
