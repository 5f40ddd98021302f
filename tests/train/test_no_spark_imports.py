"""The trainer side never imports pyspark, read from the source: every module under
lib/sparkprep/train and every sparkprep module they import, directly or not, parsed with `ast`.
test_splits runs a loader and looks at sys.modules; this also covers modules and functions that a
run does not reach (another backend, a Delta output, an import inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib"
#: delta-spark's Python package (`delta`) imports pyspark; delta-rs's (`deltalake`) does not.
SPARK = {"pyspark", "delta"}


def module_name(lib: Path, path: Path) -> str:
    parts = path.relative_to(lib).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(lib: Path, name: str) -> Path | None:
    """The source of a module or package under `lib`; None for a name that is neither (an
    attribute imported from one)."""
    path = lib.joinpath(*name.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def imported(lib: Path, path: Path) -> set[str]:
    """The names a module's import statements name, wherever they stand (functions included);
    `from m import x` names m and m.x (x may be a submodule); relative imports resolved."""
    name = module_name(lib, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def loaded_by(lib: Path, roots: list[Path]) -> dict[str, set[str]]:
    """Each sparkprep module that importing `roots` loads, with the names it imports. Importing
    a.b.c runs a/__init__ and a/b/__init__ first, so they are followed too."""
    seen: dict[str, set[str]] = {}
    pending = [module_name(lib, p) for p in roots]
    while pending:
        name = pending.pop()
        path = module_file(lib, name)
        if name in seen or path is None:
            continue
        seen[name] = imported(lib, path)
        parts = [n.split(".") for n in seen[name] if n.split(".")[0] == "sparkprep"]
        pending += [".".join(p[:i]) for p in parts for i in range(1, len(p) + 1)]
    return seen


def spark_imports(lib: Path, roots: list[Path]) -> dict[str, list[str]]:
    """The modules among those `roots` load that import pyspark, and what they import of it."""
    found = {name: sorted(n for n in names if n.split(".")[0] in SPARK)
             for name, names in loaded_by(lib, roots).items()}
    return {name: names for name, names in found.items() if names}


def test_the_trainer_side_and_what_it_imports_never_import_pyspark() -> None:
    roots = sorted((LIB / "sparkprep" / "train").rglob("*.py"))
    loaded = loaded_by(LIB, roots)
    # The walk reaches every backend and what they share, and beyond the train package.
    assert {"sparkprep.train.backends.arrow", "sparkprep.train.backends.petastorm", "sparkprep.train.backends.base",
            "sparkprep", "sparkprep.contract", "sparkprep.errors", "sparkprep.transform"} <= loaded.keys()
    assert spark_imports(LIB, roots) == {}


def test_the_check_finds_pyspark_behind_relative_imports_packages_and_functions(tmp_path: Path) -> None:
    def write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    write("sparkprep/__init__.py", "")
    root = write("sparkprep/train/reader.py", "from sparkprep.util import helper\nimport numpy\n")
    write("sparkprep/util/__init__.py", "from .shared import helper\n")
    write("sparkprep/util/shared.py", "def helper():\n    from ..engine import run\n")
    write("sparkprep/engine.py", "def run():\n    import pyspark.sql.functions as F\n")
    write("sparkprep/io/__init__.py", "from delta.tables import DeltaTable\n")
    write("sparkprep/io/fs.py", "")
    assert spark_imports(tmp_path, [root]) == {"sparkprep.engine": ["pyspark.sql.functions"]}
    # A submodule import runs its package's __init__ too.
    assert spark_imports(tmp_path, [write("sparkprep/train/files.py", "from sparkprep.io import fs\n")]) == {
        "sparkprep.io": ["delta.tables", "delta.tables.DeltaTable"]}
