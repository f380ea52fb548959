"""The options of `assistd runs list|show|cancel` and `assistd projects usage`; what they do is in
assistd/admin_commands.py, imported only when one of them runs (it loads the tables: every other
command, `--help` and `--version` start without them)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any, get_args

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def duration(text: str) -> float:
    """'30m', '12h', '7d', '2w', '45s' (or plain seconds) in seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 45s, 30m, 12h, 7d, 2w)")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def run_status(text: str) -> str:
    """One of the run statuses the SDK declares (a typo listed no runs, as if there were none)."""
    from openai.types.beta.threads.run_status import RunStatus  # here: only when --status is given

    statuses = get_args(RunStatus)
    if text not in statuses:
        raise argparse.ArgumentTypeError(f"not a run status: {text!r} (one of {', '.join(statuses)})")
    return text


def _later(name: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from assistd import admin_commands

        result: int = getattr(admin_commands, name)(args)
        return result

    return command


def add_commands(sub: Any) -> None:
    """`runs` and `projects`, each with its own subcommands, under the `assistd` parser's `sub`."""
    runs = sub.add_parser("runs", help="admin: list, show and cancel runs (reads the database)")
    cmds = runs.add_subparsers(dest="action", required=True)
    listing = cmds.add_parser("list", help="runs, newest first")
    listing.add_argument(
        "--status", type=run_status, metavar="S", help="only runs with this status (queued, in_progress, ...)"
    )
    listing.add_argument("--project", metavar="P", help="only this project's runs")
    listing.add_argument(
        "--older-than", type=duration, metavar="D", help="created at least D ago: 30m, 12h, 7d"
    )
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="at most this many (default 50)")
    listing.set_defaults(fn=_later("runs_list"))
    show = cmds.add_parser("show", help="one run in full")
    show.set_defaults(fn=_later("runs_show"))
    cancel = cmds.add_parser("cancel", help="cancel a run, as the API's cancel does")
    cancel.set_defaults(fn=_later("runs_cancel"))
    for one in (show, cancel):
        one.add_argument("run_id", metavar="RUN_ID")
    projects = sub.add_parser("projects", help="admin: usage per project (reads the database)")
    pcmds = projects.add_subparsers(dest="action", required=True)
    usage = pcmds.add_parser("usage", help="runs, responses and tokens (sum of usage) per project")
    usage.add_argument("--since", type=duration, default="7d", help="created in the last D (default 7d)")
    usage.set_defaults(fn=_later("projects_usage"))
    for cmd in (listing, show, cancel, usage):
        cmd.add_argument("--json", action="store_true", help="JSON instead of a table")
