from __future__ import annotations

import io
import json
import zipfile

import docx
import pptx
import pytest
from pptx.util import Inches

from retrieval.errors import InvalidFile, UnsupportedFile
from retrieval.extract import extract_text
from tests.utils.pdfs import made_pdf


def make_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, xref offsets computed by hand."""
    return made_pdf([(72, 720, text)])


def make_docx() -> bytes:
    doc = docx.Document()
    doc.add_heading("Quarterly report", level=1)
    doc.add_paragraph("Revenue grew by twelve percent.")
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "region"
    table.rows[0].cells[1].text = "Europe"
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def make_pptx() -> bytes:
    """Two slides, built as PowerPoint would: a title, a bullet, a table, and speaker notes."""
    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    first.shapes.title.text = "Roadmap & goals"
    first.placeholders[1].text = "Ship the beta"
    first.notes_slide.notes_text_frame.text = "Mention the hiring plan"
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Budget"
    table = second.shapes.add_table(1, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    table.cell(0, 0).text, table.cell(0, 1).text = "travel", "12k"
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("notes.txt", "plain words ünïcode".encode(), "plain words ünïcode"),
        ("README.md", b"# Title\n\nSome *markdown*.", "Some *markdown*."),
        ("bom.txt", "\ufeffwith a BOM".encode("utf-8"), "with a BOM"),
        ("wide.txt", "utf sixteen".encode("utf-16"), "utf sixteen"),
        ("main.py", b"def add(a, b):\n    return a + b\n", "return a + b"),
        ("app.ts", b"export const x: number = 1;", "export const x"),
        ("lib.rs", b"fn main() {}", "fn main"),
        ("Main.java", b"class Main {}", "class Main"),
        ("x.c", b"int main(void) { return 0; }", "int main"),
        ("x.cpp", b"#include <vector>", "#include <vector>"),
        ("x.go", b"package main", "package main"),
        ("run.sh", b"echo hi", "echo hi"),
        ("style.css", b"body { color: red }", "color: red"),
        ("paper.tex", b"\\section{Intro}", "\\section{Intro}"),
        ("data.csv", b"name,age\nada,36\n", "ada,36"),
    ],
)
def test_text_types(name: str, data: bytes, expected: str) -> None:
    assert expected in extract_text(name, data)


def test_html_drops_markup_and_scripts() -> None:
    page = b"<html><head><title>T</title><script>var x = 1;</script></head><body><h1>Hello</h1><p>World &amp; more</p></body></html>"
    text = extract_text("page.html", page)
    assert "Hello" in text and "World & more" in text
    assert "<" not in text and "var x" not in text


def test_json_becomes_an_outline() -> None:
    data = json.dumps({"title": "Aspirin", "tags": ["pain", "fever"], "meta": {"year": 1899}}).encode()
    text = extract_text("doc.json", data)
    assert "title: Aspirin" in text and "- pain" in text and "year: 1899" in text
    assert "{" not in text


def test_pdf() -> None:
    assert "Hello PDF world" in extract_text("doc.pdf", make_pdf("Hello PDF world"))


def test_pdf_pieces_in_reading_order() -> None:
    """A line drawn right half first reads left to right (pdfium orders by position)."""
    assert extract_text("doc.pdf", made_pdf([(200, 720, "brown fox"), (72, 720, "Heading:")])) == (
        "Heading: brown fox"
    )


def test_docx() -> None:
    text = extract_text("report.docx", make_docx())
    assert "Quarterly report" in text and "twelve percent" in text and "Europe" in text


def test_docx_keeps_tables_where_they_are() -> None:
    doc = docx.Document()
    doc.add_paragraph("Before the table.")
    table = doc.add_table(rows=2, cols=2)
    for r, row in enumerate([("region", "revenue"), ("Europe", "12")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.add_paragraph("After the table.")
    buf = io.BytesIO()
    doc.save(buf)
    text = extract_text("report.docx", buf.getvalue())
    assert text == "Before the table.\nregion\trevenue\nEurope\t12\nAfter the table."


def test_pptx_slides_in_order_with_notes() -> None:
    text = extract_text("deck.pptx", make_pptx())
    assert text == "Roadmap & goals\nShip the beta\nNotes:\nMention the hiring plan\n\nBudget\ntravel\t12k"


@pytest.mark.parametrize("name", ["image.png", "archive.zip", "movie.mp4", "noextension"])
def test_unsupported(name: str) -> None:
    with pytest.raises(UnsupportedFile):
        extract_text(name, b"whatever")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("broken.pdf", b"%PDF-1.4 this is not really a pdf"),
        ("broken.pdf", make_pdf("cut")[:60]),
        ("broken.docx", b"PK\x03\x04 not a zip"),
        ("empty.docx", b""),
        ("broken.pptx", b"not a zip"),
        ("latin1.txt", "caf\xe9".encode("latin-1")),
        ("binary.txt", b"\x00\x01\x02binary"),
    ],
)
def test_invalid(name: str, data: bytes) -> None:
    with pytest.raises(InvalidFile):
        extract_text(name, data)


def test_docx_that_is_a_zip_without_a_document() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(InvalidFile):
        extract_text("x.docx", buf.getvalue())
