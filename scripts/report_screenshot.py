"""docs/report.png, the README's picture of report.html: a run's report, cut to what fits a
screen (the run's summary, its first numeric and categorical columns as read, cleaned and
transformed, and the folds' distances with the first column's training vs validation), drawn by
headless Chromium. The sections are those of the run's own report.html, rendered from its files.

    .venv/etl/bin/python scripts/report_screenshot.py out/demo docs/report.png
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from sparkprep.publish.data_sections import balance_section, columns_section, folds_section
from sparkprep.publish.report import _page

WIDTH, HEIGHT = 1000, 2200


def _cut(data: dict, manifest: dict) -> dict:
    """report_data with the first numeric and categorical columns only, and one column's folds."""
    cols = manifest["columns"]
    keep = [cols["numeric"][0], *cols["categorical"][:1]]
    folds = dict(list(data["folds"].items())[:1])
    return {**data, "columns": {c: v for c, v in data["columns"].items() if c in keep}, "folds": folds}


def main(out: str, png: str) -> None:
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    data = _cut(json.loads((Path(out) / "report_data.json").read_text()), manifest)
    body = (f"<h1>sparkprep report</h1>{columns_section(data, manifest)}{folds_section(data, manifest)}"
            f"{balance_section(manifest)}")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(_page(manifest["run_id"], body))
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={Path(png).resolve()}",
                        f"--window-size={WIDTH},{HEIGHT}", page.as_uri()], check=True, capture_output=True, timeout=120)
    shot = Image.open(png)
    grey = shot.convert("L").load()
    inked = max(y for y in range(HEIGHT) if any(grey[x, y] < 250 for x in range(0, WIDTH, 4)))
    shot.crop((0, 0, WIDTH, min(inked + 24, HEIGHT))).save(png, optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
