"""Taxonomy: keyword rules (configs/taxonomy.yaml) that label benchmark items and training prompts.

An item carries every label whose keywords match (multi-label); one matching none gets the
section's `other_label`. IFEval categories are not keyword-based: they are the instruction id's
family prefix, the grouping the IFEval paper itself uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from harness.benchmarks import Categories


def _compile(keywords: list[str]) -> re.Pattern[str] | None:
    parts = []
    for kw in keywords or []:
        kw = str(kw)
        parts.append(kw[1:] if kw.startswith("~") else r"\b" + re.escape(kw) + r"\b")
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE) if parts else None


@dataclass
class RuleSet:
    labels: dict[str, re.Pattern[str] | None]
    other: str | None

    def label(self, text: str) -> list[str]:
        got = [name for name, rx in self.labels.items() if rx is not None and rx.search(text or "")]
        return got or ([self.other] if self.other else [])

    def counts(self, texts: list[str]) -> dict[str, int]:
        out = {name: 0 for name in self.labels}
        for t in texts:
            for name, rx in self.labels.items():
                if rx is not None and rx.search(t or ""):
                    out[name] += 1
        return out


def _ruleset(section: dict[str, Any] | None, key: str = "labels", other: bool = True) -> RuleSet:
    section = section or {}
    raw = section.get(key) or {}
    labels = {}
    for name, spec in raw.items():
        kws = spec.get("keywords", []) if isinstance(spec, dict) else spec
        labels[str(name)] = _compile(kws)
    return RuleSet(labels, section.get("other_label") if other else None)


@dataclass
class Taxonomy:
    """Keyword rules per section of the taxonomy file; a benchmark's registry spec names its section
    (`categories: {taxonomy: aime_topics}`)."""

    path: str | None
    sections: dict[str, Any]
    training: RuleSet
    _compiled: dict[str, RuleSet] = field(default_factory=dict, repr=False)  # section -> its item rules

    def rules(self, section: str) -> RuleSet:
        """Labels for items (with the section's `other_label` for an item that matches none); compiled once."""
        if section not in self._compiled:
            self._compiled[section] = _ruleset(self.sections.get(section))
        return self._compiled[section]

    def training_rules(self, section: str) -> RuleSet:
        """Labels for training prompts: the section's `training_keywords`, else its label keywords."""
        sec = self.sections.get(section) or {}
        return _ruleset(sec, "training_keywords", other=False) if sec.get("training_keywords") else _ruleset(sec, other=False)

    @staticmethod
    def instruction_category(instruction_id: str) -> str:
        return instruction_id.split(":", 1)[0]

    def item_categories(self, cats: Categories | None, text: str, instruction_ids: Iterable[Any],
                        field_value: Any) -> list[str]:
        """An item's categories under its benchmark's registry `categories`: instruction families, the
        dataset field's value, or the taxonomy section's labels of its text."""
        if cats is None:
            return []
        if cats.instructions:
            return sorted({self.instruction_category(str(i)) for i in instruction_ids})
        if cats.field:
            return [str(field_value)] if field_value not in (None, "") else []
        return self.rules(cats.taxonomy or "").label(text)


def load_taxonomy(path: str | Path | None) -> Taxonomy:
    data: dict[str, Any] = {}
    if path is not None and Path(path).is_file():
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    elif path is not None:
        from harness.config import ConfigError

        raise ConfigError(f"{path}: taxonomy file not found")
    return Taxonomy(path=None if path is None else str(path), sections=data, training=_ruleset(data.get("training_topics")))
