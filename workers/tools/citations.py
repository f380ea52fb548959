"""file_citation annotations: the markers the model copied from file_search results into its text.

A marker reads `【i:j†filename】` (workers/file_search.py writes them). It is resolved against
the run's recorded file_search calls: the j-th result of call i when its file name matches, else
a result with that file name, else the j-th result of call i. Markers that match nothing stay
plain text.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")


def _calls(steps: list[Any]) -> list[list[dict[str, Any]]]:
    """The results of each file_search call of the run, in order."""
    out = []
    for step in steps:
        if getattr(step, "type", None) != "tool_calls":
            continue
        for call in (getattr(step, "step_details", None) or {}).get("tool_calls") or []:
            if call.get("type") == "file_search":
                out.append((call.get("file_search") or {}).get("results") or [])
    return out


def resolve(calls: list[list[dict[str, Any]]], i: int, j: int, name: str) -> str | None:
    exact = calls[i][j] if i < len(calls) and j < len(calls[i]) else None
    if exact is not None and exact.get("file_name") == name:
        return str(exact["file_id"])
    for results in ([calls[i]] if i < len(calls) else []) + calls[::-1]:
        for r in results:
            if r.get("file_name") == name:
                return str(r["file_id"])
    if exact is None and len(calls) == 1 and j < len(calls[0]):
        exact = calls[0][j]
    return None if exact is None else str(exact["file_id"])


def annotate(text: str, steps: list[Any]) -> list[dict[str, Any]]:
    """The file_citation annotations of `text`, given this run's steps rows."""
    calls = _calls(steps)
    if not calls:
        return []
    out = []
    for m in MARKER.finditer(text):
        file_id = resolve(calls, int(m.group(1)), int(m.group(2)), m.group(3).strip())
        if file_id is not None:
            out.append(
                {
                    "type": "file_citation",
                    "text": m.group(0),
                    "start_index": m.start(),
                    "end_index": m.end(),
                    "file_citation": {"file_id": file_id},
                }
            )
    return out
