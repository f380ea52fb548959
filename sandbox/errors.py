"""Errors of the sandbox package.

    SandboxError
    ├── SandboxUnavailable   the engine is unreachable or the image is absent (say which)
    ├── SandboxBusy          another execution holds the session's lock for too long
    └── SandboxLimit         a new session would pass the cap on sessions (in total or of the project)

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
