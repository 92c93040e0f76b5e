"""The walls of DESIGN.md section 3, checked on every import of the package (module level and inside functions):

- ``sources/`` never imports ``filters/``, ``executor``, ``build``, ``train/``;
- ``filters/`` never import ``sources/``, ``manifest``, ``build``, ``cli``, ``train/``, ``executor``;
- nothing imports ``cli``;
- ``train/`` reads only the manifest format: of the package it imports only ``manifest``, ``files`` and ``errors``;
- shared text, markup and file helpers (``text``, ``files``, ``errors``, ``candidate``) import nothing above them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lima_data

PACKAGE = Path(lima_data.__file__).parent

#: (importing package prefix, imported prefixes it must not import)
WALLS = [
    ("lima_data.sources", ("lima_data.filters", "lima_data.executor", "lima_data.build", "lima_data.train",
                           "lima_data.cli", "lima_data.manifest", "lima_data.pipeline")),
    ("lima_data.filters", ("lima_data.sources", "lima_data.manifest", "lima_data.build", "lima_data.cli",
                           "lima_data.train", "lima_data.executor", "lima_data.report")),
    ("lima_data.text", ("lima_data.sources", "lima_data.filters", "lima_data.manifest", "lima_data.pipeline",
                        "lima_data.files", "lima_data.build", "lima_data.executor", "lima_data.train")),
    ("lima_data.files", ("lima_data.sources", "lima_data.filters", "lima_data.manifest", "lima_data.pipeline",
                         "lima_data.build", "lima_data.executor", "lima_data.train")),
    ("lima_data.", ("lima_data.cli",)),
]
TRAIN_MAY_IMPORT = ("lima_data.train", "lima_data.manifest", "lima_data.files", "lima_data.errors")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path`` (``from . import x`` counts as ``pkg.x``)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module(path)
        for line, target in _imports(path):
            if not target.startswith("lima_data"):
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {target}"
            for wall, banned in WALLS:
                if (module == wall or module.startswith(wall + ".") or (wall.endswith(".") and
                                                                          module.startswith(wall))) \
                        and module not in banned and any(target == b or target.startswith(b + ".") for b in banned):
                    out.append(where)
            if module.startswith("lima_data.train") and not any(
                    target == ok or target.startswith(ok + ".") for ok in TRAIN_MAY_IMPORT):
                out.append(where + " (train/ reads only the manifest format)")
    return sorted(set(out))


def test_no_wall_is_crossed():
    assert _violations() == []


def test_the_check_sees_a_crossing(tmp_path, monkeypatch):
    """The checker itself: a source module importing a filter is reported (inside a function too)."""
    fake = PACKAGE / "sources" / "_wall_probe.py"
    fake.write_text("def f():\n    from ..filters.clean import Clean\n    return Clean\n")
    try:
        found = _violations()
    finally:
        fake.unlink()
    assert any("lima_data.sources._wall_probe imports lima_data.filters.clean" in v for v in found)


@pytest.mark.parametrize("module", ["lima_data.cli"])
def test_nothing_imports_cli(module):
    importers = [p for p in PACKAGE.rglob("*.py") if any(t == module or t.startswith(module + ".")
                                                          for _, t in _imports(p)) and _module(p) != module]
    assert importers == []
