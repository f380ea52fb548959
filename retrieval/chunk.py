"""Static chunking, as OpenAI's file_search does it: windows of word pieces that overlap."""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.tokens import tokenizer

MIN_TOKENS, MAX_TOKENS = 100, 4096


@dataclass(frozen=True)
class Chunk:
    """A slice of the extracted text: `text == source[start:end]`."""

    text: str
    start: int
    end: int


def check_bounds(max_tokens: int, overlap: int) -> None:
    """OpenAI's static strategy bounds: 100 <= max <= 4096 and 0 <= overlap <= max / 2."""
    if not MIN_TOKENS <= max_tokens <= MAX_TOKENS:
        raise ValueError(f"max_chunk_size_tokens must be between {MIN_TOKENS} and {MAX_TOKENS}")
    if not 0 <= overlap <= max_tokens // 2:
        raise ValueError("chunk_overlap_tokens must be between 0 and max_chunk_size_tokens / 2")


def chunk_text(text: str, max_tokens: int = 800, overlap: int = 400) -> list[Chunk]:
    """Split `text` into windows of at most `max_tokens` word pieces, `overlap` shared.

    Window edges are moved to word starts so that no word is cut in two (a window may then
    hold a few pieces less, and an overlap a few pieces less than asked).
    """
    check_bounds(max_tokens, overlap)
    enc = tokenizer().encode(text, add_special_tokens=False)
    offsets, words = enc.offsets, enc.word_ids
    n = len(offsets)

    def word_start(i: int) -> bool:
        return i == 0 or i >= n or words[i] is None or words[i] != words[i - 1]

    chunks: list[Chunk] = []
    start = 0
    while start < n:
        end = min(start + max_tokens, n)
        while end < n and end > start + 1 and not word_start(end):
            end -= 1
        if end < n and not word_start(end):  # one word longer than the window: cut it
            end = min(start + max_tokens, n)
        lo, hi = offsets[start][0], offsets[end - 1][1]
        chunks.append(Chunk(text[lo:hi], lo, hi))
        if end >= n:
            break
        nxt = max(end - overlap, start + 1)
        while nxt < end and not word_start(nxt):
            nxt += 1
        start = nxt
    return chunks
