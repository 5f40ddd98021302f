"""What every stage is given besides its rows and its config section: where its scratch copies go."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame

from sparkprep.io.write import Materialise, materialise


@dataclass(frozen=True)
class Context:
    """One run's scratch directory (beside the output) and what a scratch write needs to know, and
    what stages found beside their rows and counts (for the report: `note`).

    Args:
        scratch: the run's scratch directory, removed at the end of the run.
        paths: the input paths, named when the input turns out to be unreadable.
        dictionary_page_bytes: output.dictionary_page_bytes, for every Parquet write.
        notes: what stages noted, by name.
        rows: at least as many rows as the stage is given, where the pipeline knows it (the rows
            cleaning accepted, for dedup): sizes a stage's tasks without a count of its own.
    """

    scratch: str
    paths: list[str]
    dictionary_page_bytes: int
    notes: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None

    def note(self, name: str, finding: Any) -> None:
        """Record what a stage found (plain data: it is written as JSON), for the pipeline to pass
        on to the report without the stage knowing the report.

        Args:
            name: the finding's name.
            finding: the finding.
        """
        self.notes[name] = finding

    def materialise(self, df: DataFrame, name: str) -> DataFrame:
        """Write `df` to `<scratch>/<name>` and read it back (io.write.materialise).

        Args:
            df: the rows to keep a copy of.
            name: the copy's path under the scratch directory.
        """
        return materialise(df, f"{self.scratch}/{name}", self.paths, self.dictionary_page_bytes)

    def under(self, folder: str) -> Materialise:
        """A `Materialise` that keeps its copies under `<scratch>/<folder>/`.

        Args:
            folder: the stage's folder in the scratch directory.
        """
        return lambda df, name: self.materialise(df, f"{folder}/{name}")
