"""`python -m polycloud.serving.llm.training OUT [TEXT...]`: train the built-in runtime's model.

Without texts it trains on the docstrings of polycloud's own modules, classes and functions (the text
this package carries, a few hundred kilobytes of English about polycloud), so `make demo` needs
nothing from a model hub. The same texts give the same bytes.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from polycloud.serving.llm import lm

DOCUMENTED = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def shipped_texts() -> list[str]:
    """Every docstring of the installed polycloud package, one text per module, in path order."""
    root = Path(str(resources.files("polycloud")))
    texts = []
    for path in sorted(root.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, DOCUMENTED))]
        docs = [doc for node in nodes if (doc := ast.get_docstring(node))]
        if docs:
            texts.append("\n\n".join(docs))
    return texts


def build(out: Path, texts: Sequence[Path] = (), token_ms: float = 0.0) -> str:
    """Train on `texts` (the shipped corpus when empty), write the model to `out`; returns its sha256.
    `token_ms` paces the replica's streamed tokens."""
    corpus = [p.read_text(encoding="utf-8") for p in texts] if texts else shipped_texts()
    raw = lm.dumps(lm.train(corpus, token_ms))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(out)
    return hashlib.sha256(raw).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Train and write a model; prints its path and sha256."""
    parser = argparse.ArgumentParser(
        prog="python -m polycloud.serving.llm.training",
        description="Train polycloud's built-in trigram language model. "
        "Example: python -m polycloud.serving.llm.training /tmp/tiny-lm.json",
    )
    parser.add_argument("out", type=Path, help="the model file to write")
    parser.add_argument("texts", nargs="*", type=Path, help="UTF-8 text files (default: the shipped corpus)")
    parser.add_argument(
        "--token-ms",
        type=float,
        default=0.0,
        help="pause before each streamed token (a GPU's pace; default 0)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.token_ms <= 10_000:
        parser.error("--token-ms must be between 0 and 10000")
    digest = build(args.out, args.texts, args.token_ms)
    print(f"{args.out} sha256:{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
