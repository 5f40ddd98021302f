"""RESULTS.md's tables: benches add their rows at the end of one (prose sections follow them)."""

from __future__ import annotations

from pathlib import Path


def insert_rows(path: Path, rows: list[str], header: str = "| date | bench |") -> None:
    """Add rows at the end of the first table whose header line starts with `header`."""
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(header))
    end = next((i for i in range(first, len(lines)) if not lines[i].startswith("|")), len(lines))
    path.write_text("\n".join([*lines[:end], *rows, *lines[end:]]) + "\n")
