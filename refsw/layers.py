"""The layers of refsw and the imports between them (README "What refsw is").

    python -m refsw.layers            # each package and the packages it imports
    python -m refsw.layers --check    # exit 1 on a layering violation

Layers, lowest first; a layer imports only from itself and the layers listed
as its ``ALLOWED`` below:

    syntax          bitstream syntax (read, write, trace), levels
    common          refsw's top-level modules: pictures, cfg, hashes, ffmpeg, threads, default content
    decoder         the normative decoder (refsw.decoder): only syntax and common
    models          float models and their registry (training side)
    tasks           task networks (MTCNN, ...), detection metrics
    encoder         the reference encoder (refsw.encoder): may import the decoder
    train           training and float-to-integer conversion (refsw.train, refsw.nn)
    tools           applications: apps, ctc, conformance

The graph is read from the source (every ``import`` statement, also inside
functions), so a lazy import counts as an import.  Also checked: no circle
among modules, and no module imports another module's private name.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

COMMON = {"refsw", "refsw.picture", "refsw.colour", "refsw.threads", "refsw.filehash", "refsw.npzfile",
          "refsw.cfg", "refsw.options", "refsw.metrics", "refsw.ffmpeg", "refsw.content", "refsw.layers"}

ALLOWED = {
    "syntax": {"syntax"},
    "common": {"syntax", "common"},
    "decoder": {"syntax", "common", "decoder"},
    "models": {"syntax", "common", "decoder", "models"},
    "tasks": {"common", "tasks"},
    "encoder": {"syntax", "common", "decoder", "models", "tasks", "encoder"},
    "train": {"syntax", "common", "decoder", "models", "tasks", "encoder", "train", "tools"},
    "tools": {"syntax", "common", "decoder", "models", "tasks", "encoder", "train", "tools"},
}


def layer_of(mod: str) -> str:
    if mod == "syntax" or mod.startswith("syntax."):
        return "syntax"
    if mod in COMMON:
        return "common"
    part = mod.split(".")[1]
    return {"decoder": "decoder", "models": "models", "tasks": "tasks", "encoder": "encoder",
            "train": "train", "nn": "train"}.get(part, "tools")


def package_of(mod: str) -> str:
    """The package a module is counted under in the printed graph."""
    parts = mod.split(".")
    if parts[0] == "syntax":
        return "syntax"
    if mod in COMMON:
        return "refsw (common)"
    if len(parts) >= 3 and parts[1] in ("decoder", "encoder") and parts[2] in ("entropy", "track2"):
        return ".".join(parts[:3])
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def modules(root: str = ROOT) -> dict:
    """{module name: source path} of refsw and syntax."""
    out = {}
    for base in ("refsw", "syntax"):
        for dp, _, files in os.walk(os.path.join(root, base)):
            for f in sorted(files):
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(dp, f), root)[:-3].replace(os.sep, ".")
                    out[rel[:-9] if rel.endswith(".__init__") else rel] = os.path.join(dp, f)
    return out


def imports(mods: dict) -> tuple[dict, list]:
    """({module: {imported project modules}}, [(module, line, imported private name)])."""
    graph, private = {}, []
    for mod, path in mods.items():
        is_pkg = path.endswith("__init__.py")
        deps = set()
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    pkg = mod if is_pkg else mod.rsplit(".", 1)[0]
                    for _ in range(node.level - 1):
                        pkg = pkg.rsplit(".", 1)[0]
                    base = pkg + ("." + node.module if node.module else "")
                else:
                    base = node.module
                names = [(base + "." + a.name, a.name) if base + "." + a.name in mods else (base, a.name)
                         for a in node.names]
            else:
                continue
            for target, name in names:
                if target.split(".")[0] not in ("refsw", "syntax"):
                    continue
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != mod:
                    deps.add(target)
                if name and name.startswith("_") and not name.startswith("__"):
                    private.append((mod, node.lineno, f"{target}.{name}"))
        graph[mod] = deps
    return graph, private


def circles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def violations(graph: dict) -> list:
    """(module, imported module, why) for every import a layer does not allow."""
    out = []
    for mod, deps in sorted(graph.items()):
        lay = layer_of(mod)
        for d in sorted(deps):
            if layer_of(d) not in ALLOWED[lay]:
                out.append((mod, d, f"{lay} imports {layer_of(d)}"))
    return out


def package_graph(graph: dict) -> dict:
    pg = {}
    for mod, deps in graph.items():
        p = package_of(mod)
        pg.setdefault(p, set()).update(package_of(d) for d in deps if package_of(d) != p)
    return pg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 on a layering violation, a circle or a private import")
    a = ap.parse_args(argv)
    graph, private = imports(modules())
    pg = package_graph(graph)
    for p in sorted(pg, key=lambda p: (list(ALLOWED).index(layer_of(p.split(" ")[0])), p)):
        print(f"{p:28s} [{layer_of(p.split(' ')[0])}] -> {', '.join(sorted(pg[p])) or '-'}")
    bad = violations(graph)
    circ = circles(graph)
    for mod, d, why in bad:
        print(f"violation: {mod} imports {d} ({why})")
    for c in circ:
        print(f"circle: {' -> '.join(c)}")
    for mod, line, name in private:
        print(f"private import: {mod} line {line} imports {name}")
    n = len(bad) + len(circ) + len(private)
    print(f"{len(graph)} modules, {len(pg)} packages; {len(bad)} violations, {len(circ)} circles, "
          f"{len(private)} private imports")
    return 1 if (a.check and n) else 0


if __name__ == "__main__":
    sys.exit(main())
