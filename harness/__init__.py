"""Reproducible evaluation harness for distilled reasoning models."""

__version__ = "0.1.0"

# Every JSON record the harness writes carries this; bump it when a record's shape changes.
SCHEMA_VERSION = 1
