"""Docker code execution for the code_interpreter tool; imports nothing else of Assistd.

sandboxes.py  Sandboxes: execute(session key, code, files, project) -> Execution; caps; start/close/reap
engine.py     containers through docker-py (threads); exchanges (attach) and file copies (exec) async
image/        the image; runner.py, its pid 1: a supervisor and the kernel that runs the code
pool.py       warm containers for new sessions
registry.py   session key -> container (Redis, or in process), per-key lock, heartbeats
reaper.py     removes stopped, expired and orphaned containers (labelled assistd.sandbox=1)
config.py, models.py, errors.py
"""

from sandbox.config import SandboxConfig
from sandbox.errors import SandboxBusy, SandboxError, SandboxLimit, SandboxUnavailable
from sandbox.models import Execution, InputFile, OutputFile
from sandbox.sandboxes import Sandboxes

__all__ = [
    "Execution",
    "InputFile",
    "OutputFile",
    "SandboxBusy",
    "SandboxConfig",
    "SandboxError",
    "SandboxLimit",
    "SandboxUnavailable",
    "Sandboxes",
]
