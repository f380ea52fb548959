"""Text extraction: file bytes in, plain text out, one reader per family of types."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from retrieval.errors import InvalidFile, UnsupportedFile

# Types OpenAI's file_search accepts, plus common source and data files read as text.
TEXT_EXTENSIONS = frozenset(
    "txt md markdown rst log csv tsv tex py pyi js mjs cjs jsx ts tsx java c h cc cpp cxx hpp hh cs go rs rb"
    " php sh bash zsh css scss less sql kt kts swift scala r lua pl pm yaml yml toml ini cfg conf xml"
    " vue svelte dart ex exs erl hs ml clj groovy gradle ps1 bat makefile dockerfile proto graphql".split()
)


def decode(data: bytes) -> str:
    """UTF-8 (BOM or not) or UTF-16 with a BOM, as OpenAI requires; anything else is invalid."""
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidFile(f"not UTF-8 or UTF-16 text: {exc.reason} at byte {exc.start}") from exc
    if "\x00" in text:
        raise InvalidFile("binary content (NUL bytes) in a text file")
    return text


def _text(data: bytes) -> str:
    return decode(data)


def _json(data: bytes) -> str:
    text = decode(data)
    try:
        value = json.loads(text)
    except ValueError:
        return text  # JSON Lines or a lenient dialect: keep it searchable as it is
    return "\n".join(_outline(value, 0)) if isinstance(value, (dict, list)) else str(value)


def _outline(value: Any, depth: int) -> list[str]:
    """A YAML-like outline: keys and values without quotes and braces, for readable chunks."""
    pad = "  " * depth
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines += [f"{pad}{key}:", *_outline(item, depth + 1)]
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            sub = _outline(item, depth + 1) if isinstance(item, (dict, list)) else [_scalar(item)]
            lines += [f"{pad}- {sub[0].strip()}", *sub[1:]] if sub else []
        return lines
    return [pad + _scalar(value)]


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _HTMLText(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = set(
        "p div br li tr h1 h2 h3 h4 h5 h6 section article header footer pre blockquote table ul ol title hr dt dd".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def _html(data: bytes) -> str:
    parser = _HTMLText()
    parser.feed(decode(data))
    parser.close()
    text = re.sub(r"[ \t\r\f\v]+", " ", "".join(parser.parts))
    return re.sub(r"\s*\n\s*", "\n", text).strip()


def _pdf(data: bytes) -> str:
    # pdfium (Chrome's PDF engine) rather than pypdf: 15-25x faster on real documents, and it
    # orders a line's pieces by position, not by drawing order (docs/benchmarks.md, "PDF text")
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        reason = "the PDF is encrypted" if "password" in str(exc).lower() else f"cannot read the PDF: {exc}"
        raise InvalidFile(reason) from exc
    try:
        pages = []
        for page in doc:
            textpage = page.get_textpage()
            pages.append(_pdfium_text(textpage.get_text_bounded()))
            textpage.close()
            page.close()
    except pdfium.PdfiumError as exc:
        raise InvalidFile(f"cannot read the PDF: {exc}") from exc
    finally:
        doc.close()
    return "\n\n".join(p for p in pages if p).strip()


def _pdfium_text(text: str) -> str:
    # pdfium ends lines with \r\n and marks a word hyphenated across lines with \x02 (or \ufffe)
    # before the break: the word is joined again, as it was written
    text = re.sub(r"[\x02\ufffe]\r?\n?", "", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _docx(data: bytes) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        doc = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidFile(f"cannot read the Word document: {exc}") from exc
    except Exception as exc:  # lxml.etree.XMLSyntaxError and friends
        raise InvalidFile(f"cannot read the Word document: {exc}") from exc
    # paragraphs and tables in the order they were written: a table belongs to the text around it
    parts: list[str] = []
    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            parts += _table_rows(block)
        else:
            parts.append(block.text)
    return "\n".join(p for p in parts if p.strip())


def _table_rows(table: Any) -> list[str]:
    """A table's rows, cells separated by tabs (a merged cell is repeated, as python-docx gives it)."""
    return ["\t".join(cell.text for cell in row.cells) for row in table.rows]


def _pptx(data: bytes) -> str:
    import pptx
    from pptx.exc import PackageNotFoundError

    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise InvalidFile(f"cannot read the presentation: {exc}") from exc
    except Exception as exc:  # lxml.etree.XMLSyntaxError and friends
        raise InvalidFile(f"cannot read the presentation: {exc}") from exc
    slides = [_slide_text(slide) for slide in deck.slides]
    return "\n\n".join(s for s in slides if s)


def _slide_text(slide: Any) -> str:
    """A slide's shapes in their order on the slide (text frames, tables, groups), then its
    speaker notes: what the presenter says is often where the content is."""
    lines = _shape_lines(slide.shapes)
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            lines += ["Notes:", notes.text]
    return "\n".join(line for line in lines if line.strip()).strip()


def _shape_lines(shapes: Any) -> list[str]:
    lines: list[str] = []
    for shape in shapes:
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines += [p.text for p in shape.text_frame.paragraphs]
        elif getattr(shape, "has_table", False) and shape.has_table:
            lines += _table_rows(shape.table)
        elif hasattr(shape, "shapes"):  # a group
            lines += _shape_lines(shape.shapes)
    return lines


READERS: dict[str, Callable[[bytes], str]] = {
    **{ext: _text for ext in TEXT_EXTENSIONS},
    "json": _json,
    "html": _html,
    "htm": _html,
    "pdf": _pdf,
    "docx": _docx,
    "pptx": _pptx,
}


def extension(filename: str) -> str:
    path = PurePath(filename.lower())
    return path.suffix.lstrip(".") or path.name  # "Makefile", "Dockerfile"


def supported(filename: str) -> bool:
    return extension(filename) in READERS


def extract_text(filename: str, data: bytes) -> str:
    """The searchable text of a file; UnsupportedFile by extension, InvalidFile if unreadable."""
    reader = READERS.get(extension(filename))
    if reader is None:
        raise UnsupportedFile(f"files of type {PurePath(filename).suffix or filename!r} cannot be searched")
    return reader(data)
