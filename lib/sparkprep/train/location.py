"""Where a sparkprep output lives: a pyarrow filesystem, the path on it, and the URL readers use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs


@dataclass(frozen=True)
class OutputLocation:
    """An output root `<out>/`; `url` has a scheme because Petastorm and delta-rs need URLs."""

    fs: pafs.FileSystem
    path: str
    url: str

    @classmethod
    def of(cls, out_dir: str) -> OutputLocation:
        """A bare local path (absolute or relative) becomes `file://`; URIs go through pyarrow."""
        if "://" not in out_dir:
            # Not Path.as_uri(): it percent-quotes, and Petastorm uses urlparse().path unquoted.
            out_dir = "file://" + str(Path(out_dir).resolve())
        fs, path = pafs.FileSystem.from_uri(out_dir)
        return cls(fs=fs, path=path.rstrip("/"), url=out_dir.rstrip("/"))

    def path_of(self, relative: str) -> str:
        return f"{self.path}/{relative}"

    def url_of(self, relative: str) -> str:
        return f"{self.url}/{relative}"
