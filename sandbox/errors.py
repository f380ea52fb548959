"""Errors of the sandbox package.

    SandboxError
    ├── SandboxUnavailable   the engine is unreachable or the image is absent (say which)
    ├── SandboxBusy          another execution holds the session's lock for too long
    ├── SandboxLimit         a new session would pass the cap on sessions (in total or of the project)
    └── EngineError          an exchange with a container failed (engine.py)
        ├── Gone             the container cannot be attached to (removed, stopped): its session is lost
        ├── Died             the container's runner stopped answering mid-exchange (its stream ended)
        └── ReplyTooLarge    the runner's reply outgrew what the host accepts

Sandboxes handles the EngineErrors of an execution itself (a lost session is started again, a
dead or flooded runner is reported in the Execution); one that still escapes `execute()` (a
new container gone or dead at once) is the engine failing, as an OSError from Docker would be.
What the user's code does (raise, time out, run out of memory, crash its container) is not an
error here: it comes back as an Execution with that status.
"""


class SandboxError(Exception):
    pass


class SandboxUnavailable(SandboxError):
    pass


class SandboxBusy(SandboxError):
    pass


class SandboxLimit(SandboxError):
    pass


class EngineError(SandboxError):
    pass


class Gone(EngineError):
    """The container cannot be attached to (removed, stopped): its session is lost."""


class Died(EngineError):
    """The container's runner stopped answering mid-exchange (its stream ended)."""


class ReplyTooLarge(EngineError):
    """The reply outgrew what the host accepts (code writing to the runner's channel, say)."""
