#!/usr/bin/env python3
"""Fail when a module of src/ uses one of a higher layer, or when modules
import each other in a cycle (issue 11: model < engine < persist < bindings).

A dependency is any `crate::<module>` path outside comments."""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
LAYER = {"model": 0, "engine": 1, "persist": 2, "bindings": 3}


def modules():
    """Every module file: the core's by their name (each is re-exported at
    the crate root, `crate::<name>`), the binding's as `bindings::<name>`
    (nothing below may name them)."""
    found = {}
    for path in SRC.rglob("*.rs"):
        rel = path.relative_to(SRC)
        if rel.name in ("lib.rs", "mod.rs"):
            continue
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        name = f"bindings::{rel.stem}" if layer == "bindings" else rel.stem
        if name in found:
            raise SystemExit(f"two modules named {name}")
        found[name] = (path, LAYER.get(layer, LAYER["bindings"]))
    return found


def uses(path, names):
    code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
    return {m for m in re.findall(r"crate::(\w+)", code) if m in names}


def main():
    mods = modules()
    graph = {name: uses(path, mods) - {name} for name, (path, _) in mods.items()}
    bad = []
    for name, deps in graph.items():
        for dep in deps:
            if mods[dep][1] > mods[name][1]:
                bad.append(f"{name} (layer {mods[name][1]}) uses {dep} (layer {mods[dep][1]})")
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                bad.append("cycle: " + " -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    for line in bad:
        print(line)
    print(f"layers: {len(graph)} modules, {len(bad)} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
