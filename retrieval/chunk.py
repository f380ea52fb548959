"""Static chunking, as OpenAI's file_search does it: windows of tokens that overlap.

Tokens are cl100k_base's: OpenAI's vector stores embed chunks with text-embedding-3 models,
whose encoding is cl100k_base, so `max_chunk_size_tokens: 800` holds as much text here as there
(the local embedding model reads its own word pieces, in windows of its own: retrieval/embed.py).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from core.tokens import CL100K, count, encoder

MIN_TOKENS, MAX_TOKENS = 100, 4096
# a pre-tokenizer piece longer than this is counted in slices: a run of CJK letters (no spaces)
# is one piece, and a window must be able to end inside it
PIECE_CHARS = 24


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


def _pieces(text: str) -> tuple[list[int], list[int]]:
    """The encoding's pre-tokenizer pieces (BPE never merges across them, so a text's tokens are
    its pieces' tokens added up): their start offsets, and the running token count before each."""
    starts: list[int] = []
    before = [0]
    memo: dict[str, int] = {}  # most pieces are common words
    pos = 0
    for piece in encoder(CL100K).pretokenize(text):
        for i in range(0, len(piece), PIECE_CHARS):
            part = piece[i : i + PIECE_CHARS]
            n = memo.get(part)
            if n is None:
                n = memo[part] = count(part, CL100K)
            starts.append(pos + i)
            before.append(before[-1] + n)
        pos += len(piece)
    return starts, before


def chunk_text(text: str, max_tokens: int = 800, overlap: int = 400) -> list[Chunk]:
    """Split `text` into windows of at most `max_tokens` tokens, `overlap` shared.

    Window edges are moved to word starts so that no word is cut in two (a window may then
    hold a few tokens less, and an overlap a few tokens less than asked).
    """
    check_bounds(max_tokens, overlap)
    starts, before = _pieces(text)
    n = len(starts)
    edges = [*starts, len(text)]

    def word_start(i: int) -> bool:
        return i == 0 or i >= n or text[starts[i]].isspace() or text[starts[i] - 1].isspace()

    def window(start: int, room: int) -> tuple[int, int, int]:
        """(end piece, first and last character) of the window from piece `start`."""
        end = max(bisect.bisect_right(before, before[start] + room) - 1, start + 1)
        cut = end
        while cut < n and cut > start + 1 and not word_start(cut):
            cut -= 1
        if cut == n or word_start(cut):  # else one word longer than the window: cut it
            end = cut
        lo, hi = edges[start], edges[min(end, n)]
        while lo < hi and text[lo].isspace():
            lo += 1
        while hi > lo and text[hi - 1].isspace():
            hi -= 1
        return end, lo, hi

    chunks: list[Chunk] = []
    start = 0
    while start < n:
        end, lo, hi = window(start, max_tokens)
        # a first piece without its leading space can take a token more (" alpha" is one,
        # "alpha" may be two): the chunk's own count decides
        room = max_tokens
        while room > 1 and (excess := count(text[lo:hi], CL100K) - max_tokens) > 0:
            room -= excess
            end, lo, hi = window(start, room)
        if hi > lo:
            chunks.append(Chunk(text[lo:hi], lo, hi))
        if end >= n:
            break
        nxt = max(bisect.bisect_left(before, before[end] - overlap), start + 1)
        while nxt < end and not word_start(nxt):
            nxt += 1
        start = nxt
    return chunks
