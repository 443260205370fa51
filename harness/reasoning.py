"""Splitting a model's reasoning from its answer: one rule, used by the proxy, runners and analysis.

Protocol `reasoning_stripped` (DESIGN.md §3): the answer is the text after the last `</think>`;
an opened but unclosed `<think>` means the model never answered (empty answer).
"""

from __future__ import annotations

from dataclasses import dataclass

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class Split:
    reasoning: str  # text inside the think block(s); "" when none
    answer: str  # text the benchmark should score
    has_reasoning: bool  # a think block (closed or not) or a server-split reasoning_content was present
    think_closed: bool  # False only for an opened, never closed block


def split_reasoning(content: str | None, reasoning_content: str | None = None) -> Split:
    """Split one completion. `reasoning_content` is what llama-server returns when it parses thinking."""
    text = content or ""
    if reasoning_content:
        # The server already separated them; content may still carry a stray block (fine-tunes leak it).
        inner = split_reasoning(text)
        reasoning = reasoning_content + (("\n" + inner.reasoning) if inner.reasoning else "")
        return Split(reasoning, inner.answer, True, inner.think_closed)
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        head = text[:close]
        open_at = head.find(THINK_OPEN)
        reasoning = head[open_at + len(THINK_OPEN):] if open_at >= 0 else head
        return Split(reasoning.strip(), text[close + len(THINK_CLOSE):].lstrip(), True, True)
    open_at = text.find(THINK_OPEN)
    if open_at >= 0:
        return Split(text[open_at + len(THINK_OPEN):].strip(), "", True, False)
    return Split("", text, False, True)


def strip_reasoning(text: str | None) -> str:
    """The scored answer under `reasoning_stripped`."""
    return split_reasoning(text).answer
