"""Reproducible evaluation harness for distilled reasoning models."""

__version__ = "0.1.0"

# Every JSON record the harness writes carries this; bump it when a record's shape changes.
SCHEMA_VERSION = 1

# Benchmark keys used everywhere (DESIGN.md §3). `aime_combined` exists only in analysis.
BENCHMARKS = ("aime24", "aime25", "ifeval", "humaneval_plus")
LM_EVAL_BENCHMARKS = ("aime24", "aime25", "ifeval")
