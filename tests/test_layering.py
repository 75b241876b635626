"""The layers of docs/architecture.md, checked on the source with the ``ast`` module.

- the vocabulary (``scaling.*`` outside ``scaling.app``) imports only itself;
- ``profilers`` imports the vocabulary and itself; ``fits`` imports the vocabulary and itself;
- the application layer (``scaling.app``) may import everything;
- the facade (``scaling/__init__.py``, ``scaling/__main__.py``) names the public API lazily and
  is the one place the vocabulary's package points up (by string, for ``scaling.predict``);
- no import cycle among the project's modules, counting imports inside functions too.

Imports inside functions count like the others: a lazy import is for a heavy third-party
package (torch, diffusers, plotly), never a way around the layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scaling", "profilers", "fits")
FACADE = {"scaling", "scaling.__main__"}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = p
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = name.split(".") if is_pkg else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            mod = _target(t)
            if mod and mod != name:
                found.append((mod, node.lineno))
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(name: str) -> str:
    if name in FACADE:
        return "facade"
    if name == "scaling.app" or name.startswith("scaling.app."):
        return "app"
    return name.split(".")[0] if not name.startswith("scaling") else "vocabulary"


ALLOWED = {
    "vocabulary": {"vocabulary"},
    "profilers": {"vocabulary", "profilers"},
    "fits": {"vocabulary", "fits"},
    "app": {"vocabulary", "profilers", "fits", "app"},
    "facade": {"vocabulary", "profilers", "fits", "app", "facade"},
}


def test_the_layer_of_every_module_is_known():
    assert {layer(n) for n in MODULES} <= set(ALLOWED)
    assert "scaling.app.cli" in MODULES and "scaling.settings" in MODULES


def test_no_module_imports_above_its_layer():
    bad = []
    for name, imports in GRAPH.items():
        for target, line in imports:
            if layer(target) not in ALLOWED[layer(name)]:
                bad.append(f"{MODULES[name].relative_to(ROOT)}:{line} ({layer(name)}) imports {target} ({layer(target)})")
    assert bad == [], "\n".join(bad)


def test_no_import_cycle():
    graph = defaultdict(set)
    for name, imports in GRAPH.items():
        for target, _ in imports:
            graph[name].add(target)
    cycles, index, low, stack, on = [], {}, {}, [], set()

    def visit(v, counter=[0]):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("bad, layer_of", [("profilers.flops.profile", "profilers"), ("fits.laws", "fits"),
                                           ("scaling.app.estimate", "app"), ("scaling.settings", "vocabulary")])
def test_the_checker_knows_the_layers(bad, layer_of):
    # the checker itself: a module of each layer is classified as the architecture says
    assert layer(bad) == layer_of
    assert ("scaling.app.estimate" in {t for t, _ in GRAPH["scaling.app.commands.predict"]}
            or "scaling.app.estimate" in MODULES)


def test_the_vocabulary_would_be_caught_importing_upward(tmp_path):
    # an upward import written into a vocabulary module is reported by the same rules
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from fits.laws import PowerLaw\n")
    name = "scaling.settings"
    found = [(t, line) for t, line in _imports(name, src)]
    assert found == [("fits.laws", 2)]
    assert layer("fits.laws") not in ALLOWED[layer(name)]
