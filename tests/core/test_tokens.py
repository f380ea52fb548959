"""core/tokens.py: OpenAI's encodings for OpenAI's model names, an estimate for the others."""

from __future__ import annotations

import pytest

from core.tokens import CL100K, O200K, count, encoding_for, tokens

# (text, cl100k_base, o200k_base): the counts tiktoken gives with OpenAI's published encoding
# files (their SHA-256 checked against tiktoken's), taken once by hand
COUNTS = [
    ("tiktoken is great!", 6, 6),
    ("Hello, world! How are you today?", 9, 9),
    ("  indented\n\tcode = f(x)  # comment\n", 13, 13),
    ("naïve café — 日本語のテキスト 🙂👍🏽", 20, 15),
    ("<|endoftext|> is plain text here", 11, 11),  # a special token's text, as plain text
    ("12345678901234567890", 7, 7),
]


@pytest.mark.parametrize(("text", "cl100k", "o200k"), COUNTS)
def test_counts_match_the_encodings(text: str, cl100k: int, o200k: int) -> None:
    assert (count(text, CL100K), count(text, O200K)) == (cl100k, o200k)
    assert tokens(text, "gpt-4o-mini") == o200k and tokens(text, "gpt-4-turbo") == cl100k


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", O200K),
        ("gpt-4o-2024-08-06", O200K),
        ("chatgpt-4o-latest", O200K),
        ("gpt-4.1-nano", O200K),
        ("gpt-5", O200K),
        ("o1", O200K),
        ("o3-mini", O200K),
        ("o4-mini", O200K),
        ("openai/gpt-4o", O200K),
        ("ft:gpt-4o-mini:org::abc", O200K),
        ("gpt-4", CL100K),
        ("gpt-4-turbo", CL100K),
        ("gpt-3.5-turbo", CL100K),
        ("llama-3.1-8b", None),
        ("qwen2.5", None),
        ("olmo-2", None),
        ("echo", None),
    ],
)
def test_encoding_of_a_model_name(model: str, encoding: str | None) -> None:
    assert encoding_for(model) == encoding


def test_other_models_are_estimated() -> None:
    assert tokens("x" * 400, "llama-3.1-8b") == 101
    assert tokens("", "gpt-4o") == 0
    assert tokens("lone \ud800 surrogate", "gpt-4o") > 0
