"""A word-level trigram language model: the generative model of polycloud's built-in LLM runtime.

Small enough to train in a second and generate on any CPU, and a real one: trained from text (by
default the documentation polycloud ships), it predicts each next token from the two before it, backing
off to one and then none when a context was never seen. Decoding is greedy at temperature 0 — the same
prompt gives the same answer on every replica, so answers through the gateway can be compared with
answers straight from a replica — and samples counts raised to 1/temperature otherwise (seeded by
`seed`). As in most decoders, a token that would repeat a trigram already in the answer is skipped
(`no_repeat_ngram_size=3`), so greedy answers do not loop.

The model file is JSON (`FORMAT`): the vocabulary and, per context, the most frequent next tokens with
their counts, and the pace of streamed tokens (`token_ms`).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Any

from polycloud.errors import PermanentError

FORMAT = "polycloud-trigram-lm/1"
TOKEN = re.compile(r"[A-Za-z0-9_]+(?:['’.-][A-Za-z0-9_]+)*|[^\sA-Za-z0-9_]")
"""Words (with inner apostrophes, dots and hyphens: `don't`, `p99`, `v1.2`) and single punctuation."""
TOP_NEXT = 12
"""Next tokens kept per context (the decoder never looks further)."""
SENTENCE_END = frozenset({".", "!", "?"})
NO_SPACE_BEFORE = frozenset({".", ",", ";", ":", "!", "?", ")", "]", "}", "%", "'"})
NO_SPACE_AFTER = frozenset({"(", "[", "{", "`", "/"})
MIN_SENTENCE_TOKENS = 12
"""An answer may end at a sentence's end once it has this many tokens."""
EMBEDDING_DIMS = 256


class InvalidModel(PermanentError):
    """A model file that is not a polycloud trigram model."""


MARKUP = re.compile(r"[`*#|<>_]+|-{2,}|\$\{|\}")
"""Markdown and code markup dropped from training text (the model writes prose)."""


def tokenize(text: str) -> list[str]:
    """The tokens of `text` (words and punctuation), as the model counts them."""
    return TOKEN.findall(text)


Next = tuple[tuple[int, ...], tuple[int, ...]]
"""Next token ids by falling count, and their counts."""


@dataclass(frozen=True)
class LanguageModel:
    """A trained trigram model."""

    vocab: tuple[str, ...]
    unigrams: Next
    bigrams: dict[int, Next]
    trigrams: dict[tuple[int, int], Next]
    counts: tuple[int, ...]
    """Occurrences of each vocabulary token in the training text."""
    token_ms: float = 0.0
    """Pause before each streamed token, as a GPU decoder's pace (0: as fast as they are made)."""

    @cached_property
    def index(self) -> dict[str, int]:
        """Token → id."""
        return {token: i for i, token in enumerate(self.vocab)}

    def generate(
        self, prompt: str, max_tokens: int, temperature: float = 0.0, seed: int | None = None
    ) -> Iterator[str]:
        """The answer to `prompt`, token by token (each with the space before it, if any).

        The answer starts at the prompt's rarest known word of four letters or more (what it is about)
        and stops at a sentence's end once it has `MIN_SENTENCE_TOKENS` tokens, or after `max_tokens`.
        """
        index = self.index
        rng = random.Random(seed if seed is not None else 0)
        words = [index[t] for t in tokenize(prompt) if t in index and t[0].isalpha()]
        topical = [i for i in words if len(self.vocab[i]) >= 4] or words
        first = min(topical, key=lambda i: (self.counts[i], i)) if topical else self.unigrams[0][0]
        seen: set[tuple[int, int, int]] = set()
        previous, current = -1, first
        emitted = 0
        while emitted < max_tokens:
            token = self.vocab[current]
            yield token if emitted == 0 else _spaced(self.vocab[previous], token)
            emitted += 1
            if token in SENTENCE_END and emitted >= MIN_SENTENCE_TOKENS:
                return
            following = self._next(previous, current, seen, temperature, rng)
            seen.add((previous, current, following))
            previous, current = current, following

    def _next(
        self,
        previous: int,
        current: int,
        seen: set[tuple[int, int, int]],
        temperature: float,
        rng: random.Random,
    ) -> int:
        for found in (self.trigrams.get((previous, current)), self.bigrams.get(current), self.unigrams):
            if found is None:
                continue
            ids, counts = found
            choices = [(i, c) for i, c in zip(ids, counts, strict=True) if (previous, current, i) not in seen]
            if choices:
                return _pick(choices, temperature, rng)
        return self.unigrams[0][0]

    def embed(self, text: str) -> list[float]:
        """A unit vector for `text`: its tokens hashed into `EMBEDDING_DIMS` buckets, weighted by how rare
        each is in the training text (feature hashing with idf weights)."""
        index = self.index
        vector = [0.0] * EMBEDDING_DIMS
        for token in tokenize(text.lower()):
            digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % EMBEDDING_DIMS
            sign = 1.0 if digest[4] & 1 else -1.0
            seen = self.counts[index[token]] if token in index else 0
            vector[bucket] += sign * math.log(2.0 + 1.0 / (1.0 + seen) * 1000.0)
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]


def _pick(choices: list[tuple[int, int]], temperature: float, rng: random.Random) -> int:
    if temperature <= 0:
        return choices[0][0]
    weights = [c ** (1.0 / temperature) for _, c in choices]
    return rng.choices([i for i, _ in choices], weights=weights)[0]


def _spaced(previous: str, token: str) -> str:
    if token in NO_SPACE_BEFORE or previous in NO_SPACE_AFTER:
        return token
    return " " + token


def train(texts: Iterable[str], token_ms: float = 0.0) -> LanguageModel:
    """Count a trigram model from `texts` (each a document; contexts do not cross documents).

    Raises:
        InvalidModel: The texts hold no tokens.
    """
    unigram: Counter[str] = Counter()
    bigram: dict[str, Counter[str]] = {}
    trigram: dict[tuple[str, str], Counter[str]] = {}
    for text in texts:
        tokens = tokenize(MARKUP.sub(" ", text))
        unigram.update(tokens)
        for a, b in pairwise(tokens):
            bigram.setdefault(a, Counter())[b] += 1
        for a, b, c in zip(tokens, tokens[1:], tokens[2:], strict=False):
            trigram.setdefault((a, b), Counter())[c] += 1
    if not unigram:
        raise InvalidModel("the training text holds no tokens")
    vocab = tuple(sorted(unigram))
    ids = {token: i for i, token in enumerate(vocab)}

    def top(counter: Counter[str]) -> Next:
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_NEXT]
        return tuple(ids[t] for t, _ in ranked), tuple(c for _, c in ranked)

    return LanguageModel(
        vocab=vocab,
        unigrams=top(Counter({t: c for t, c in unigram.items() if t[0].isalnum()}) or unigram),
        bigrams={ids[a]: top(c) for a, c in bigram.items()},
        trigrams={(ids[a], ids[b]): top(c) for (a, b), c in trigram.items()},
        counts=tuple(unigram[t] for t in vocab),
        token_ms=token_ms,
    )


def dumps(model: LanguageModel) -> bytes:
    """The model as its file's bytes (deterministic: the same model gives the same bytes)."""
    data = {
        "format": FORMAT,
        "tokenMs": model.token_ms,
        "vocab": model.vocab,
        "counts": model.counts,
        "unigrams": model.unigrams,
        "bigrams": [[k, *v] for k, v in sorted(model.bigrams.items())],
        "trigrams": [[a, b, *v] for (a, b), v in sorted(model.trigrams.items())],
    }
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> LanguageModel:
    """A model from its file's bytes.

    Raises:
        InvalidModel: Not JSON, or not this format.
    """
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidModel(f"not a {FORMAT} model file")
        return LanguageModel(
            vocab=tuple(data["vocab"]),
            counts=tuple(data["counts"]),
            unigrams=_next(data["unigrams"]),
            bigrams={row[0]: _next(row[1:]) for row in data["bigrams"]},
            trigrams={(row[0], row[1]): _next(row[2:]) for row in data["trigrams"]},
            token_ms=float(data.get("tokenMs", 0.0)),
        )
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise InvalidModel(f"not a valid {FORMAT} model file: {e}") from e


def _next(pair: Sequence[Any]) -> Next:
    ids, counts = pair
    return tuple(int(i) for i in ids), tuple(int(c) for c in counts)


def is_model_file(path: Path) -> bool:
    """Whether `path` starts like a model file of this format (a cheap test, not a validation)."""
    try:
        with path.open("rb") as f:
            return f.read(64).startswith(b'{"format":"' + FORMAT.encode())
    except OSError:
        return False


def load(path: Path) -> tuple[LanguageModel, str]:
    """The model in `path` and the sha256 of its bytes.

    Raises:
        InvalidModel: The file cannot be read or is not a model of this format.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidModel(f"cannot read model {path}: {e.strerror or e}") from e
    return loads(raw), hashlib.sha256(raw).hexdigest()
