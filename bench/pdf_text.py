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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.utils.pdfs import made_pdf  # noqa: E402

# drawn bottom line first, and a line drawn in two pieces (second half first)
SHUFFLED = made_pdf([(72, 680, "third line"), (72, 700, "second line"), (72, 720, "first line")], size=12)
SPLIT = made_pdf([(200, 720, "the quick brown fox"), (72, 720, "Heading:")], size=12)


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


if __name__ == "__main__":
    main()
