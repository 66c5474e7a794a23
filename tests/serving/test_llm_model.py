"""The built-in runtime's trigram language model: training, the file format, decoding."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from polycloud.serving.llm import lm
from polycloud.serving.llm.training import build, shipped_texts

TEXT = [
    "The gateway routes each request to a healthy replica. A replica that fails is ejected. "
    "The gateway retries the request in another cluster. The control plane places each model."
]


def test_the_same_text_gives_the_same_bytes_and_loads_back(tmp_path: Path) -> None:
    model = lm.train(TEXT, token_ms=7)
    raw = lm.dumps(model)
    assert raw == lm.dumps(lm.train(TEXT, token_ms=7))
    (tmp_path / "m.json").write_bytes(raw)
    loaded, digest = lm.load(tmp_path / "m.json")
    assert loaded == model and len(digest) == 64 and loaded.token_ms == 7
    assert lm.is_model_file(tmp_path / "m.json")


def test_greedy_decoding_is_deterministic_and_does_not_loop() -> None:
    model = lm.train(TEXT)
    first = list(model.generate("Where does the gateway send a request?", 40))
    assert first == list(model.generate("Where does the gateway send a request?", 40))
    assert first[0] == "gateway" or first[0] == "request"
    words = [t.strip() for t in first]
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    assert len(trigrams) == len(set(trigrams)), "a greedy answer repeated a trigram"
    assert len(first) <= 40


def test_sampling_follows_the_seed() -> None:
    model = lm.train(TEXT * 3)
    a = list(model.generate("gateway", 20, temperature=1.0, seed=1))
    assert a == list(model.generate("gateway", 20, temperature=1.0, seed=1))


def test_embeddings_are_unit_vectors_and_similar_texts_are_closer() -> None:
    model = lm.train(TEXT)
    a, b, c = (model.embed(t) for t in ("gateway replica", "the gateway and a replica", "control plane"))
    assert len(a) == lm.EMBEDDING_DIMS and math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-9)
    dot = lambda u, v: sum(x * y for x, y in zip(u, v, strict=True))  # noqa: E731
    assert dot(a, b) > dot(a, c)


@pytest.mark.parametrize(
    "raw", [b"", b"{}", b'{"format":"other"}', b"[1,2]", b'{"format":"polycloud-trigram-lm/1"}']
)
def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / "bad.json").write_bytes(raw)
    with pytest.raises(lm.InvalidModel):
        lm.load(tmp_path / "bad.json")


def test_the_shipped_corpus_is_polycloud_docstrings(tmp_path: Path) -> None:
    texts = shipped_texts()
    assert len(texts) > 100 and any("gateway" in t for t in texts)
    digest = build(tmp_path / "tiny.json", token_ms=3)
    model, again = lm.load(tmp_path / "tiny.json")
    assert again == digest and len(model.vocab) > 2000 and "gateway" in model.vocab
