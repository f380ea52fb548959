"""Token counts as the model counts them: `tokens(text, model)`.

OpenAI's model names get OpenAI's own encodings (o200k_base for gpt-4o, gpt-4.1, gpt-5 and the
o-series; cl100k_base for gpt-4 and gpt-3.5), from the bpe-openai package, which carries both
in its binary (nothing is downloaded). Any other model gets an estimate of about four characters
a token: its tokenizer is the inference server's, and asking the server for every count would
cost a request per message.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Protocol

O200K, CL100K = "o200k_base", "cl100k_base"

# model-name prefixes, after a provider prefix ("openai/") and a fine-tune's "ft:" are taken off
_O200K = re.compile(r"(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|gpt-oss|codex|o\d)(\b|-|$)")
_CL100K = re.compile(r"(gpt-4|gpt-3\.5|gpt-35|text-embedding-3|text-embedding-ada-002)(\b|-|$)")


class Counter(Protocol):
    def count(self, text: str) -> int: ...

    def pretokenize(self, text: str) -> list[str]: ...


@functools.lru_cache(maxsize=256)
def encoding_for(model: str) -> str | None:
    """The encoding OpenAI's model `model` reads its prompt in, or None for other models."""
    name = model.lower().removeprefix("ft:").rsplit("/", 1)[-1]
    if _O200K.match(name):
        return O200K
    if _CL100K.match(name):
        return CL100K
    return None


@functools.cache
def _bindings() -> ModuleType:
    """bpe-openai's Rust extension, loaded on its own: the package's __init__ decodes every
    encoding's rank table in Python on import (3.5 s and 66 MB per process, measured), which
    the Rust tokenizers never need."""
    spec = importlib.util.find_spec("bpe_openai")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("bpe-openai is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_bindings{suffix}"
        if path.is_file():
            ext = importlib.util.spec_from_file_location("bpe_openai._bindings", path)
            assert ext is not None and ext.loader is not None
            module = importlib.util.module_from_spec(ext)
            ext.loader.exec_module(module)
            return module
    raise ModuleNotFoundError(f"bpe-openai's extension is missing from {folder}")


@functools.cache
def encoder(encoding: str) -> Counter:
    """An encoding's tokenizer, built once per process (o200k: 0.2 s and 70 MB; cl100k: 0.1 s, 28 MB)."""
    tokenizer: Counter = _bindings().tokenizer_for_encoding(encoding)
    return tokenizer


def estimate(text: str) -> int:
    """About four characters a token (English text in most tokenizers)."""
    return len(text) // 4 + 1


def count(text: str, encoding: str) -> int:
    """Tokens of `text` in `encoding`; special tokens' text counts as plain text, as it does
    when it reaches the model inside a message."""
    if not text:
        return 0
    try:
        return encoder(encoding).count(text)
    except UnicodeEncodeError:  # a lone surrogate: count it as the replacement character it becomes
        return encoder(encoding).count(text.encode("utf-8", "replace").decode("utf-8"))


def tokens(text: str, model: str) -> int:
    """Tokens of `text` for `model`: exact for OpenAI's models, an estimate for the others."""
    encoding = encoding_for(model)
    return estimate(text) if encoding is None else count(text, encoding)
