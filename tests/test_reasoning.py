"""The one reasoning/answer split rule (DESIGN.md §3) used by proxy, runners and analysis."""

from __future__ import annotations

import pytest

from harness.reasoning import split_reasoning, strip_reasoning


@pytest.mark.parametrize(
    ("text", "reasoning", "answer", "has", "closed"),
    [
        ("plain answer", "", "plain answer", False, True),
        ("<think>work</think>\n\nThe answer is 5", "work", "The answer is 5", True, True),
        ("<think>a</think> b </think> final", "a</think> b", "final", True, True),  # last </think> wins
        ("<think>never finished", "never finished", "", True, False),  # unclosed = no answer
        ("no open tag</think>answer", "no open tag", "answer", True, True),  # template put <think> in the prompt
        ("", "", "", False, True),
        (None, "", "", False, True),
    ],
)
def test_split(text: str | None, reasoning: str, answer: str, has: bool, closed: bool) -> None:
    s = split_reasoning(text)
    assert (s.reasoning, s.answer, s.has_reasoning, s.think_closed) == (reasoning, answer, has, closed)


def test_server_split_reasoning_content_is_used() -> None:
    s = split_reasoning("final answer", reasoning_content="server-side thoughts")
    assert s.reasoning == "server-side thoughts" and s.answer == "final answer" and s.has_reasoning


def test_strip_reasoning_is_the_answer() -> None:
    assert strip_reasoning("<think>x</think>42") == "42"
    assert strip_reasoning("<think>cut off") == ""
