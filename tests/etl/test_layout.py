"""The package's layout as the issue that drew it asks (DESIGN.md, "Layout"): module-level imports
inside sparkprep form no cycle, stages borrow no constants from one another, and the data
contract's names are defined (and spelled) in contract.py only. (That the trainer side reaches no
pyspark, functions' imports included: tests/train/test_no_spark_imports.py.)

Read with `ast`, without importing anything, so the test runs in either environment.
"""

from __future__ import annotations

import ast
from pathlib import Path

LIB = Path(__file__).resolve().parents[2] / "lib"
PACKAGE = LIB / "sparkprep"


def _module_name(path: Path) -> str:
    parts = path.relative_to(LIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names imported from it) for every import at module level; `from a import b`
    where a.b is a module counts as importing a.b."""
    found: list[tuple[str, list[str]]] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [a.name for a in node.names if f"{node.module}.{a.name}" in MODULES]
            found += [(f"{node.module}.{name}", []) for name in submodules]
            rest = [a.name for a in node.names if a.name not in submodules]
            if rest:
                found.append((node.module, rest))
    return found


GRAPH = {name: {m for m, _ in _imports(tree) if m in MODULES and m != name} for name, tree in MODULES.items()}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for name in sorted(GRAPH):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def _room(module: str) -> str | None:
    """A stage's room: sparkprep.stages.<room>[.<module>] (dedup/ and normalise/ are one room each)."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "stages" and parts[2] != "context" else None


def test_no_stage_imports_another_stage_for_a_constant():
    borrowed = [f"{name} imports {', '.join(constants)} from {source}"
                for name, tree in MODULES.items() if _room(name)
                for source, names in _imports(tree)
                if _room(source) and _room(source) != _room(name)
                and (constants := [n for n in names if n.isupper()])]
    assert not borrowed, "shared names belong in contract.py:\n" + "\n".join(borrowed)


def _contract() -> dict[str, str]:
    """contract.py's UPPER_CASE names bound to a string."""
    return {t.id: node.value.value for node in MODULES["sparkprep.contract"].body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()}


def _outside_contract() -> list[tuple[str, ast.Module]]:
    """Every module but contract.py, the trainer side's included."""
    return [(name, tree) for name, tree in MODULES.items() if name != "sparkprep.contract"]


def test_contract_names_are_defined_in_contract_only():
    contract = _contract()
    values = set(contract.values())
    redefined = [f"{name}: {t.id}" for name, tree in _outside_contract()
                 for node in tree.body if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)
                 if t.id in contract or (isinstance(node.value, ast.Constant) and node.value.value in values)]
    assert not redefined, f"contract names defined outside contract.py: {redefined}"


def test_no_module_spells_a_column_of_the_contract():
    """Output columns and the `_sp_` columns that cross stages are written as contract names, never
    as literals."""
    contract = _contract()
    columns = {contract[n] for n in ("ROW_ID", "FOLD", "REPLICA", "LABEL_INDEX", "IN_TRAIN", "DUP_CLUSTER")}
    columns |= {v for v in contract.values() if v.startswith(contract["INTERNAL_PREFIX"]) and v != contract["INTERNAL_PREFIX"]}
    spelled = sorted({f"{name}:{node.lineno}: {node.value!r}" for name, tree in _outside_contract()
                      for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in columns})
    assert not spelled, "use the contract's names:\n" + "\n".join(spelled)


def test_io_stays_at_the_edge():
    """io/ reads and writes for everyone; it imports no stage, quality or publish module."""
    inward = sorted(f"{name} imports {target}" for name in MODULES if name.startswith("sparkprep.io.")
                    for target in GRAPH[name] if target.split(".")[1] in ("quality", "stages", "publish"))
    assert not inward, "\n".join(inward)
