#!/usr/bin/env python3
"""Write a tiny llama-architecture GGUF model, built from text the repository ships, for llama.cpp.

Usage::

    python scripts/tiny_gguf.py OUT.gguf [--corpus FILE ...] [--merges N] [--topics K] [--recent R]

The end-to-end tests run llama.cpp's server as a third-party model server and must not download a model
from a hub, so this script makes one (16 MB, in about a second, with numpy and the `gguf` package from
PyPI, the writer ggml publishes). The corpus defaults to the repository's README.md and docs/*.md. The
same corpus and options always give the same bytes.

The model is a real llama-architecture network (one transformer block, two attention heads) whose
weights are set, not trained by gradient descent: it computes a bigram language model of the corpus,
with two attention heads on top.

* Tokenizer: llama.cpp's "gpt2" byte-level BPE with the GPT-2 pre-tokenizer. The merges are learnt from
  the corpus here (plain BPE: the most frequent adjacent pair first), so frequent words are single
  tokens (" cluster", " gateway") and others split into frequent parts. The vocabulary is five control
  tokens, <|begin_of_text|> (BOS, added to every prompt), <|end|> (EOS), <|system|>, <|user|> and
  <|assistant|>, then the 256 bytes, then one token per merge.
* State: every token the corpus contains (and each control token) has a "state"; the others share one.
  The token embedding is the state's one-hot vector, stored exactly in Q4_0.
* Bigram: the output matrix holds log P(next token | state), from the corpus's bigram counts smoothed
  towards unigram frequencies. The RMSNorm weights are set so that normalising a one-hot vector gives
  it back, so without the heads the logits are exactly those log-probabilities. The feed-forward block
  is zero.
* Head 0, topics: the corpus's K most frequent content words are topics. Every token attends to BOS and
  the other non-topic tokens, whose values are zero, except <|assistant|>, which attends to the topic
  words in its context; their one-hot values make the question's most specific topic word the first
  word of the reply. A chat reply thus depends on the question (and /v1/completions continues from
  the prompt's last token).
* Head 1, recent tokens: every token attends to a window of about the last 15 tokens (rotary
  embedding, one frequency), and the values, one-hot over the R most frequent tokens, lower the logits
  of those seen in the window. Greedy decoding of a bare bigram falls into short loops
  ("/polycloud/polycloud/..."); with this it writes markdown-flavoured word salad such as
  " gateway's `polycloud/v1.\n| --- | 2, and the same run 1 s".

Greedy decoding (temperature 0) is deterministic and practically never ends early (EOS is likely only
at the end of a corpus file), so a request with `max_tokens` gets that many tokens, finish_reason
"length". Tests should not pin the exact text beyond a few tokens: near-ties may break differently on
another CPU or llama.cpp version.

Chat template (`tokenizer.chat_template`, Jinja, used by llama-cpp-python's `/v1/chat/completions`)::

    <|begin_of_text|><|system|>...<|end|><|user|>...<|end|><|assistant|>
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import gguf
import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent

BOS, EOS, SYSTEM, USER, ASSISTANT = "<|begin_of_text|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"
SPECIALS = (BOS, EOS, SYSTEM, USER, ASSISTANT)
BOS_ID, EOS_ID = 0, 1

CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{%- if message['role'] in ['system', 'assistant'] -%}{%- set role = message['role'] -%}"
    "{%- else -%}{%- set role = 'user' -%}{%- endif -%}"
    "<|{{ role }}|>"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- elif message['content'] -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "<|end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)

# llama.cpp's "gpt-2" pre-tokenizer regex in Python's `re` (\p{L} is [^\W\d_], \p{N} is \d and
# [^\s\p{L}\p{N}] is (?:[^\s\w]|_)); llama.cpp's own implementation also ends with \s+.
PIECE_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")

# Words too common to be a topic.
STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        """about above after again also among another because been before being below between both cannot
        could does doing done down during each either every from further have having here however into
        itself just least less like made make many more most much must never next none once only other
        others over same shall should since some such than that their them themselves then there these
        they this those through under until upon very were what when where whether which while will with
        within without would your yours""",
    )
)

FFN_DIM = 32
HEAD_DIM_MIN = 64
GATE = 16.0  # attention scores are GATE**2 / sqrt(head_dim): 32 with 128 dimensions, so softmax is one-hot
TOPIC_BOOST = 64.0
LOG_FLOOR = -30.0  # the log-probability of tokens the model must not produce
ROPE_BASE = 1e12
RMS_EPS = 1e-5
ALPHA = 1.0  # weight of the unigram prior in each state's next-token distribution
RECENT_PAIR = 8  # rotary pair of the recent-tokens head: theta = ROPE_BASE ** (-2 * 8 / head_dim)
RECENT_SHARPNESS = 30.0
RECENT_PENALTY = 200.0

FloatArray = npt.NDArray[np.float32]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters: how byte-level BPE spells tokens."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = _bytes_to_unicode()
CHAR_BYTES = {c: b for b, c in BYTE_CHARS.items()}


def spell(piece: str) -> str:
    """A piece of text in byte-level BPE spelling."""
    return "".join(BYTE_CHARS[b] for b in piece.encode("utf-8"))


def unspell(token: str) -> str:
    """The text of a byte-level BPE token (invalid UTF-8 replaced)."""
    return bytes(CHAR_BYTES[c] for c in token).decode("utf-8", errors="replace")


def default_corpus() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def read_corpus(paths: Sequence[Path]) -> list[str]:
    docs = []
    for path in paths:
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
        if text.strip():
            docs.append(text)
    if not docs:
        raise SystemExit("tiny_gguf: the corpus is empty")
    return docs


def train_bpe(docs: Sequence[str], n_merges: int) -> list[tuple[str, str]]:
    """Byte-level BPE merges learnt from the corpus: the most frequent pair first, ties by spelling."""
    counts = Counter(spell(piece) for doc in docs for piece in PIECE_RE.findall(doc))
    words = [list(w) for w in sorted(counts)]
    freq = [counts[w] for w in sorted(counts)]
    pair_count: Counter[tuple[str, str]] = Counter()
    where: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for i, symbols in enumerate(words):
        for pair in itertools.pairwise(symbols):
            pair_count[pair] += freq[i]
            where[pair].add(i)
    heap = [(-n, pair) for pair, n in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    while heap and len(merges) < n_merges:
        neg, pair = heapq.heappop(heap)
        if -neg != pair_count.get(pair, 0):
            continue  # stale entry
        if -neg < 2:
            break
        merges.append(pair)
        merged = pair[0] + pair[1]
        touched: set[tuple[str, str]] = set()
        for i in sorted(where.pop(pair, set())):
            old = words[i]
            for p in itertools.pairwise(old):
                pair_count[p] -= freq[i]
                touched.add(p)
            new: list[str] = []
            j = 0
            while j < len(old):
                if j + 1 < len(old) and old[j] == pair[0] and old[j + 1] == pair[1]:
                    new.append(merged)
                    j += 2
                else:
                    new.append(old[j])
                    j += 1
            words[i] = new
            for p in itertools.pairwise(new):
                pair_count[p] += freq[i]
                where[p].add(i)
                touched.add(p)
        pair_count.pop(pair, None)
        for p in touched:
            n = pair_count.get(p, 0)
            if n <= 0:
                pair_count.pop(p, None)
            elif p != pair:
                heapq.heappush(heap, (-n, p))
    return merges


class Tokenizer:
    """llama.cpp's BPE tokenization for this vocabulary, re-implemented to count the corpus's bigrams."""

    def __init__(self, tokens: Sequence[str], merges: Sequence[tuple[str, str]]) -> None:
        self.ids = {text: i for i, text in enumerate(tokens)}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self._cache: dict[str, list[int]] = {}

    def encode_piece(self, piece: str) -> list[int]:
        cached = self._cache.get(piece)
        if cached is not None:
            return cached
        symbols = list(spell(piece))
        none = len(self.ranks)
        while len(symbols) > 1:  # the lowest-ranked pair first, the leftmost on ties, as llama.cpp does
            rank, i = min(
                (self.ranks.get(pair, none), i) for i, pair in enumerate(itertools.pairwise(symbols))
            )
            if rank == none:
                break
            symbols[i : i + 2] = [symbols[i] + symbols[i + 1]]
        out: list[int] = []
        for symbol in symbols:
            if symbol in self.ids:
                out.append(self.ids[symbol])
            else:
                out.extend(self.ids[ch] for ch in symbol)
        self._cache[piece] = out
        return out

    def encode(self, text: str) -> list[int]:
        return [t for piece in PIECE_RE.findall(text) for t in self.encode_piece(piece)]


class TinyModel(NamedTuple):
    tokens: list[str]
    merges: list[tuple[str, str]]
    tensors: dict[str, FloatArray]
    head_dim: int
    n_states: int
    topics: list[list[int]]
    recent: list[int]


def build_vocab(merges: Sequence[tuple[str, str]]) -> list[str]:
    tokens = [*SPECIALS, *(BYTE_CHARS[b] for b in range(256))]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    return tokens


def pick_topics(tokens: Sequence[str], unigram: Sequence[int], k: int) -> list[list[int]]:
    """The k most frequent content words (4+ ASCII letters, not a stopword), most frequent first.

    A word is a token with a leading space (" gateway") and, when it is a token too, the same word
    without (a message starting "gateway ..."); the first is the one a reply uses.
    """
    variants: defaultdict[str, list[int]] = defaultdict(list)
    for tid in range(len(SPECIALS), len(tokens)):
        word = unspell(tokens[tid])
        core = word.removeprefix(" ")
        if len(core) >= 4 and core.isascii() and core.isalpha() and core.lower() not in STOPWORDS:
            variants[core].append(tid)
    words = [
        sorted(ids, key=lambda t: (not unspell(tokens[t]).startswith(" "), t)) for ids in variants.values()
    ]
    words = [ids for ids in words if sum(unigram[t] for t in ids) >= 3]
    words.sort(key=lambda ids: (-sum(unigram[t] for t in ids), ids[0]))
    return words[:k]


def build_model(docs: Sequence[str], n_merges: int, n_topics: int, n_recent: int) -> TinyModel:
    merges = train_bpe(docs, n_merges)
    tokens = build_vocab(merges)
    tok = Tokenizer(tokens, merges)
    n_vocab = len(tokens)
    n_special = len(SPECIALS)
    streams = [[BOS_ID, *tok.encode(doc), EOS_ID] for doc in docs]

    unigram = [0] * n_vocab
    for stream in streams:
        for t in stream[1:]:
            unigram[t] += 1

    # Each control token and each token the corpus contains has its own state; the rest share one.
    state_of = [-1] * n_vocab
    n_states = 0
    for tid in range(n_vocab):
        if tid < n_special or unigram[tid] > 0:
            state_of[tid] = n_states
            n_states += 1
    rare_state = n_states
    n_states += 1
    state_of = [rare_state if s < 0 else s for s in state_of]

    topics = pick_topics(tokens, unigram, n_topics)
    recent = sorted(range(n_special, n_vocab), key=lambda t: (-unigram[t], t))[:n_recent]
    head_dim = max(HEAD_DIM_MIN, -(-max(len(topics), len(recent)) // 32) * 32)
    # residual stream: [states | topic values | recent-token values], a multiple of 32 for Q4_0 rows
    topic_base = -(-n_states // 32) * 32
    recent_base = topic_base + head_dim
    n_embd = recent_base + head_dim

    # Bigram counts; the chat control tokens get the distribution of whole words that start a line.
    counts = np.zeros((n_states, n_vocab), dtype=np.float64)
    line_start = np.zeros(n_vocab, dtype=np.float64)
    texts = [unspell(t) if i >= n_special else "" for i, t in enumerate(tokens)]
    for stream in streams:
        for prev, nxt in itertools.pairwise(stream):
            counts[state_of[prev], nxt] += 1.0
        for prev, word, after in zip(stream, stream[1:], stream[2:], strict=False):
            if texts[prev].endswith("\n") and texts[word].isalpha() and not texts[after][:1].isalpha():
                line_start[word] += 1.0
    for special in (SYSTEM, USER, ASSISTANT, EOS):
        counts[state_of[tok.ids[special]]] = line_start

    # P(next | s) = (c(s, next) + ALPHA * P_unigram(next)) / (c(s) + ALPHA), never a control token but EOS.
    producible = np.ones(n_vocab, dtype=bool)
    producible[[i for i in range(n_special) if i != EOS_ID]] = False
    uni = np.asarray(unigram, dtype=np.float64) + 0.5
    uni[~producible] = 0.0
    uni /= uni.sum()
    probs = (counts + ALPHA * uni) / (counts.sum(axis=1, keepdims=True) + ALPHA)
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(probs), LOG_FLOOR)
    logp[:, ~producible] = LOG_FLOOR
    assistant = state_of[tok.ids[ASSISTANT]]
    logp[assistant, producible] *= 0.05  # the question's topic decides the first word; this breaks ties

    # numpy shapes are ggml's reversed: the ggml tensor {n_embd, n_vocab} is (n_vocab, n_embd) here.
    norm = np.full(n_embd, math.sqrt(1.0 / n_embd + RMS_EPS), dtype=np.float32)  # RMSNorm(one-hot) = one-hot
    token_embd = np.zeros((n_vocab, n_embd), dtype=np.float32)
    token_embd[np.arange(n_vocab), state_of] = 1.0
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    output[:, :n_states] = logp.T

    # Two attention heads; q, k, v rows [0, head_dim) are head 0's, [head_dim, 2 * head_dim) head 1's.
    wq = np.zeros((2 * head_dim, n_embd), dtype=np.float32)
    wk = np.zeros((2 * head_dim, n_embd), dtype=np.float32)
    wv = np.zeros((2 * head_dim, n_embd), dtype=np.float32)
    wo = np.zeros((n_embd, 2 * head_dim), dtype=np.float32)

    # Head 0, topics. It uses the last rotary pair, which ROPE_BASE keeps still (< 1e-6 rad). Every token
    # looks at BOS and the other non-topic tokens, whose values are zero; <|assistant|> looks at the
    # topic words before it, and their values make the question's most specific topic the first word.
    to_topic, to_sink = head_dim - 2, head_dim - 1
    wq[to_sink, :n_states] = GATE
    wq[to_sink, assistant] = 0.0
    wq[to_topic, assistant] = GATE
    wk[to_sink, :n_states] = GATE
    for rank, variants in enumerate(topics):
        for tid in variants:
            s = state_of[tid]
            wk[to_sink, s] = 0.0
            wk[to_topic, s] = GATE
            wv[rank, s] = 1.0
        wo[topic_base + rank, rank] = 1.0
        output[variants[0], topic_base + rank] = TOPIC_BOOST * (1.0 + rank / len(topics))

    # Head 1, recent tokens: q and k are the same constant vector on one rotary pair, so the score is
    # RECENT_SHARPNESS * cos(theta * distance) and attention is a window of the last ~15 tokens (the
    # token itself included). Its values are one-hot over the most frequent tokens, so the output
    # lowers the logit of each of them in proportion to its weight in the window: greedy decoding does
    # not fall into the bigram's short loops ("/polycloud/polycloud").
    amp = math.sqrt(RECENT_SHARPNESS * math.sqrt(head_dim))
    wq[head_dim + 2 * RECENT_PAIR, :n_states] = amp
    wk[head_dim + 2 * RECENT_PAIR, :n_states] = amp
    for rank, tid in enumerate(recent):
        wv[head_dim + rank, state_of[tid]] = 1.0
        wo[recent_base + rank, head_dim + rank] = 1.0
        output[tid, recent_base + rank] = -RECENT_PENALTY

    zeros_up = np.zeros((FFN_DIM, n_embd), dtype=np.float32)
    tensors = {
        "token_embd.weight": token_embd,
        "output_norm.weight": norm,
        "output.weight": output,
        "blk.0.attn_norm.weight": norm,
        "blk.0.attn_q.weight": wq,
        "blk.0.attn_k.weight": wk,
        "blk.0.attn_v.weight": wv,
        "blk.0.attn_output.weight": wo,
        "blk.0.ffn_norm.weight": norm,
        "blk.0.ffn_gate.weight": zeros_up,
        "blk.0.ffn_up.weight": zeros_up,
        "blk.0.ffn_down.weight": np.zeros((n_embd, FFN_DIM), dtype=np.float32),
    }
    return TinyModel(tokens, merges, tensors, head_dim, n_states, topics, recent)


def write_gguf(out: Path, model: TinyModel, n_docs: int) -> None:
    n_vocab, n_embd = model.tensors["token_embd.weight"].shape
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(tmp, "llama")
    writer.add_name("polycloud tiny bigram")
    writer.add_description(
        f"A bigram language model of {n_docs} polycloud documents set into a one-block llama network "
        "by scripts/tiny_gguf.py, for end-to-end tests. Not a trained LLM."
    )
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(FFN_DIM)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_key_length(model.head_dim)
    writer.add_value_length(model.head_dim)
    writer.add_rope_dimension_count(model.head_dim)
    writer.add_rope_freq_base(ROPE_BASE)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(model.tokens)
    writer.add_token_types(
        [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in model.tokens]
    )
    writer.add_token_merges([f"{a} {b}" for a, b in model.merges])
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, value in model.tensors.items():
        if name == "token_embd.weight":
            # one-hot rows are exact in Q4_0 (scale -1/8, nibble 0) at a quarter of f16's size
            qtype = gguf.GGMLQuantizationType.Q4_0
            writer.add_tensor(name, gguf.quants.quantize(value, qtype), raw_dtype=qtype)
        elif ".attn_" in name and value.ndim == 2:
            # rows of 0 and one constant each: Q8_0 keeps them to 4 decimals at half f16's size
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(value, qtype), raw_dtype=qtype)
        elif value.ndim == 1:
            writer.add_tensor(name, value)
        else:
            writer.add_tensor(name, value.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the .gguf file to write")
    parser.add_argument(
        "--corpus", type=Path, nargs="+", help="UTF-8 text files (default: README.md docs/*.md)"
    )
    parser.add_argument("--merges", type=int, default=2000, help="BPE merges to learn (default 2000)")
    parser.add_argument("--topics", type=int, default=128, help="topic words for chat replies (default 128)")
    parser.add_argument("--recent", type=int, default=128, help="tokens kept from repeating (default 128)")
    args = parser.parse_args(None if argv is None else list(argv))
    started = time.monotonic()
    paths: list[Path] = args.corpus or default_corpus()
    docs = read_corpus(paths)
    model = build_model(docs, args.merges, args.topics, args.recent)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_gguf(args.out, model, len(docs))
    print(
        f"tiny_gguf: wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB; {len(model.tokens)} tokens, "
        f"{model.n_states} states, {len(model.topics)} topics, {len(docs)} files) "
        f"in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
