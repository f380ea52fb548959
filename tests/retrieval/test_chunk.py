from __future__ import annotations

import pytest

from core.tokens import CL100K, count
from retrieval.chunk import chunk_text
from retrieval.tokens import count_tokens


def cl100k(text: str) -> int:
    return count(text, CL100K)


WORDS = " ".join(f"word{i} alpha beta gamma" for i in range(600))


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("Hello, world!") == 4  # punctuation splits into its own pieces
    assert count_tokens("unbelievably") > 1  # word pieces, not words


def test_short_text_is_one_chunk() -> None:
    text = "A short note about aspirin."
    (chunk,) = chunk_text(text)
    assert (chunk.text, chunk.start, chunk.end) == (text, 0, len(text))


def test_empty_text_has_no_chunks() -> None:
    assert chunk_text("") == []
    assert chunk_text("   \n ") == []


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (100, 50), (200, 50), (800, 400)])
def test_chunks_respect_size_and_overlap(size: int, overlap: int) -> None:
    chunks = chunk_text(WORDS, size, overlap)
    assert len(chunks) > 2
    for c in chunks:
        assert WORDS[c.start : c.end] == c.text
        assert cl100k(c.text) <= size
    assert chunks[0].start == 0 and chunks[-1].end == len(WORDS)
    for a, b in zip(chunks, chunks[1:]):
        assert a.start < b.start
        assert WORDS[a.end : b.start].strip() == ""  # no gap but whitespace
        shared = cl100k(WORDS[b.start : a.end]) if b.start < a.end else 0
        assert shared <= overlap
        assert shared >= overlap - 8  # only moved to a word start
        assert not WORDS[b.start - 1].isalnum()  # never cut a word


@pytest.mark.parametrize(("size", "overlap"), [(99, 0), (4097, 0), (800, 401), (100, -1)])
def test_bounds(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("text", size, overlap)


def test_sizes_are_cl100k_tokens() -> None:
    """OpenAI counts a chunk's size in its embedding models' tokens (cl100k_base), not in the
    local model's word pieces."""
    chunks = chunk_text(WORDS, 800, 0)
    sizes = [cl100k(c.text) for c in chunks]
    assert all(790 <= s <= 800 for s in sizes[:-1])
    assert sum(sizes) >= cl100k(WORDS) - len(chunks)


def test_text_without_spaces_is_cut() -> None:
    text = "日本語のテキスト" * 400  # one pre-tokenizer piece, no word starts
    chunks = chunk_text(text, 100, 0)
    assert "".join(c.text for c in chunks) == text
    assert all(cl100k(c.text) <= 100 for c in chunks)


def test_offsets_survive_normalisation() -> None:
    text = "Ünïcödé  ACCENTS\tand\u00a0spaces " * 80
    chunks = chunk_text(text, 100, 20)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert chunks[-1].end == len(text.rstrip())
