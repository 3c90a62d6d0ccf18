"""Every package the code imports is one pyproject.toml declares (not one that only
happens to come along with another)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(folder: str, without: str | None = None) -> set[str]:
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        if without and (ROOT / without) in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names
            and n not in ("rotator", "tests", "bench", "__future__")}


def _declared(*extras: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    return {re.split(r"[\[<>=!~ ;]", s, maxsplit=1)[0].lower().replace("_", "-") for s in specs}


def _missing(folder: str, declared: set[str], without: str | None = None
             ) -> dict[str, list[str]]:
    dists = packages_distributions()
    out = {}
    for name in sorted(_imports(folder, without)):
        found = [d.lower().replace("_", "-") for d in dists.get(name, [])]
        if not set(found) & declared:
            out[name] = found
    return out


def test_the_product_imports_only_declared_packages():
    assert _missing("rotator", _declared(), without="rotator/sandbox") == {}
    assert _missing("rotator/sandbox", _declared("sandbox")) == {}


def test_the_tests_and_benches_import_only_declared_packages():
    declared = _declared("sandbox", "dev")
    assert _missing("tests", declared) == {}
    assert _missing("bench", declared) == {}
