"""PDF text extraction side by side: pypdf (the reader in use) and pypdfium2, on the PDFs given
on the command line plus two made here (reading order when the page's drawing order differs).

    .venv/bin/python bench/pdf_text.py /usr/share/doc/*/*.pdf
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path


def made_pdf(lines: list[tuple[int, int, str]]) -> bytes:
    """One page with each (x, y, text) drawn in the order given, Helvetica 12."""
    ops = "".join(f"BT /F1 12 Tf {x} {y} Td ({t}) Tj ET\n" for x, y, t in lines).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (i, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


# drawn bottom line first, and a line drawn in two pieces (second half first)
SHUFFLED = made_pdf([(72, 680, "third line"), (72, 700, "second line"), (72, 720, "first line")])
SPLIT = made_pdf([(200, 720, "the quick brown fox"), (72, 720, "Heading:")])


def with_pypdf(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n\n".join((p.extract_text() or "").strip() for p in PdfReader(io.BytesIO(data)).pages)


def with_pdfium(data: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(data)
    try:
        texts = []
        for page in doc:
            tp = page.get_textpage()
            texts.append(tp.get_text_bounded().strip())
            tp.close()
            page.close()
        return "\n\n".join(texts)
    finally:
        doc.close()


def timed(fn: Callable[[bytes], str], data: bytes) -> tuple[float, str]:
    runs = []
    text = ""
    for _ in range(3):
        t = time.perf_counter()
        text = fn(data)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs), text


def main() -> None:
    inputs = [("made: lines drawn bottom-up", SHUFFLED), ("made: a line drawn right half first", SPLIT)]
    inputs += [(Path(p).name, Path(p).read_bytes()) for p in sys.argv[1:]]
    for name, data in inputs:
        print(f"## {name} ({len(data) // 1024} KiB)")
        for label, fn in (("pypdf", with_pypdf), ("pypdfium2", with_pdfium)):
            seconds, text = timed(fn, data)
            words = len(text.split())
            print(f"{label:10} {seconds * 1000:8.1f} ms  {len(text):7} chars {words:6} words  {text[:80]!r}")
            Path("/tmp/pdfb", f"{name}.{label}.txt").write_text(text)


if __name__ == "__main__":
    main()
