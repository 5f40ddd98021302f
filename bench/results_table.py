"""RESULTS.md's first table: benches add their rows at its end (prose sections follow it)."""

from __future__ import annotations

from pathlib import Path


def insert_rows(path: Path, rows: list[str]) -> None:
    """Add rows at the end of the file's first table."""
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| date |"))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    path.write_text("\n".join([*lines[:end], *rows, *lines[end:]]) + "\n")
