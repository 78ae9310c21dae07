"""The house's shape: data flows one way, so no module of the package imports
(at its top or inside a function) a module that imports it back."""

import ast
from pathlib import Path

import zoomreel

ROOT = Path(zoomreel.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = p.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, p: Path, mods: dict) -> set[str]:
    pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(p.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = pkg
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            names = [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for t in names:
            while t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in mods and t != name and not name.startswith(t + "."):  # a module may import its own package
                found.add(t)
    return found


def test_the_package_has_no_import_cycles():
    mods = _modules()
    graph = {m: _imports(m, p, mods) for m, p in mods.items()}

    def cycle_from(start):
        path, seen = [start], set()

        def walk(m):
            for n in sorted(graph[m]):
                if n == start:
                    return path + [n]
                if n not in seen:
                    seen.add(n)
                    path.append(n)
                    got = walk(n)
                    if got:
                        return got
                    path.pop()
            return None

        return walk(start)

    cycles = [c for c in (cycle_from(m) for m in sorted(mods)) if c]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_stages_below_the_engine_never_import_jax():
    """The cache, the scene and the shared value types stay free of JAX (docs: the cache never imports JAX)."""
    mods = _modules()
    for name in ("zoomreel.cache", "zoomreel.view", "zoomreel.model", "zoomreel.scene", "zoomreel.precision_names"):
        assert "zoomreel.engine" not in _imports(name, mods[name], mods), name
        assert "jax" not in mods[name].read_text(), name
