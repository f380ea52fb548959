"""What a response's text cites: file_search results, by the markers the model copies from them
(`【0:1†notes.md】`, as the runs' excerpts read), and files its code wrote, by their
`sandbox:/mnt/data/...` links.

A marker is taken out of the text and becomes a `file_citation` annotation at the place it
stood (OpenAI's Responses text carries no markers); while a marker may still be arriving, the
text from its opening bracket on is held back (at most HOLD characters). A marker that matches
no result stays in the text as written.
"""

from __future__ import annotations

from typing import Any

from workers.tools.citations import MARKER, resolve
from workers.tools.code_interpreter import SANDBOX_LINK

HOLD = 200  # longer than any marker: past this, an opening bracket was just text
OPEN, CLOSE = "【", "】"


class Citations:
    def __init__(self) -> None:
        self.searches: list[list[dict[str, Any]]] = []  # each file_search call's results, in order
        self.files: dict[str, tuple[str, str]] = {}  # /mnt/data path -> (container id, container file id)

    def hold(self, text: str) -> tuple[str, str]:
        """(the text that can go out now, the end held back as a marker's possible start)."""
        at = text.rfind(OPEN)
        if not self.searches or at < 0 or CLOSE in text[at:] or len(text) - at > HOLD:
            return text, ""
        return text[:at], text[at:]

    def split(self, text: str, offset: int) -> list[tuple[str, dict[str, Any] | None]]:
        """The text in pieces, each followed by the citation its marker made (markers removed);
        `offset`: how much of the message's text went before."""
        if not self.searches or OPEN not in text:
            return [(text, None)]
        calls = [
            [{"file_name": r.get("filename"), "file_id": r.get("file_id")} for r in rs]
            for rs in self.searches
        ]
        out: list[tuple[str, dict[str, Any] | None]] = []
        start, kept = 0, 0
        for m in MARKER.finditer(text):
            name = m.group(3).strip()
            file_id = resolve(calls, int(m.group(1)), int(m.group(2)), name)
            if file_id is None:
                continue
            piece = text[start : m.start()]
            kept += len(piece)
            annotation = {
                "type": "file_citation",
                "file_id": file_id,
                "filename": name,
                "index": offset + kept,
            }
            out.append((piece, annotation))
            start = m.end()
        out.append((text[start:], None))
        return out

    def file_links(self, text: str) -> list[dict[str, Any]]:
        """container_file_citation annotations for the links in `text` to files the code wrote."""
        found = []
        for m in SANDBOX_LINK.finditer(text):
            path = m.group(1).rstrip(".,;:!?")  # the end of a sentence is not part of the name
            if path in self.files:
                container_id, file_id = self.files[path]
                found.append(
                    {
                        "type": "container_file_citation",
                        "container_id": container_id,
                        "file_id": file_id,
                        "filename": path.rsplit("/", 1)[-1],
                        "start_index": m.start(),
                        "end_index": m.start() + len("sandbox:" + path),
                    }
                )
        return found
