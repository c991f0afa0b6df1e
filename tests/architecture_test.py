"""The package's import graph: layered, no cycles, engines free of paths.

Layers (a module may import its own layer and those below, never above):

  0 foundation   fileio chunks sharding losses metrics configuration writers
                 checkpointing progress argtypes weights
  1 data         data/ diffusion/ plots
  2 models       models/
  3 engines      training/ influence/ correction/ detection/ convert/
                 pretrained
  4 contract     workdir (the work-dir layout and its loaders)
  5 stages       pipeline/ bench/ tools/
  6 entry        cli
"""

import ast
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "diffinf_jax")
LAYERS = {
    0: ("fileio", "chunks", "sharding", "losses", "metrics", "configuration",
        "writers", "checkpointing", "progress", "argtypes", "weights",
        "stats"),
    1: ("data", "diffusion", "plots"),
    2: ("models",),
    3: ("training", "influence", "correction", "detection", "convert",
        "pretrained"),
    4: ("workdir",),
    5: ("pipeline", "bench", "tools"),
    6: ("cli",),
}
# Engines compute; where files live is the work-dir contract's business.
ENGINES = ("influence", "correction", "models", "diffusion", "detection")


def _modules() -> dict[str, str]:
  out = {}
  for dirpath, _, files in os.walk(ROOT):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        name = "diffinf_jax" + ("" if rel == "__init__" else "." + rel)
        out[name.removesuffix(".__init__")] = path
  return out


def _imports(path: str, modules) -> set[str]:
  tree = ast.parse(open(path).read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
      continue
    for n in names:
      if n in modules and n.startswith("diffinf_jax."):
        found.add(n)
  return found


def _top(module: str) -> str:
  return module.split(".")[1] if "." in module else ""


def _layer(module: str) -> int:
  top = _top(module)
  for layer, names in LAYERS.items():
    if top in names:
      return layer
  raise AssertionError(f"{module} is in no layer; add it to LAYERS")


MODULES = _modules()
GRAPH = {m: _imports(p, MODULES) for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if m != "diffinf_jax"))
def test_no_upward_import(module):
  mine = _layer(module)
  up = sorted(d for d in GRAPH[module]
              if _layer(d) > mine and not d.startswith(module + "."))
  assert not up, f"{module} (layer {mine}) imports upward: {up}"


def test_no_import_cycle():
  # Package __init__ files that re-export their own submodules are edges
  # parent -> child only, which cannot close a cycle through the child.
  state, stack = {}, []

  def visit(m):
    state[m] = "open"
    stack.append(m)
    for d in sorted(GRAPH[m]):
      if d == m or d.startswith(m + "."):
        continue
      if state.get(d) == "open":
        cycle = stack[stack.index(d):] + [d]
        raise AssertionError("import cycle: " + " -> ".join(cycle))
      if d not in state:
        visit(d)
    stack.pop()
    state[m] = "done"
  for m in sorted(GRAPH):
    if m not in state:
      visit(m)


def test_engines_do_not_spell_work_dir_paths():
  offenders = []
  pattern = re.compile(r"\bworkdir\b|os\.path\.join\(|\bopen\(|"
                       r'"(scores\.npy|corrected\.npz|labels\.npz)"')
  for m, path in MODULES.items():
    if _top(m) in ENGINES:
      for n, line in enumerate(open(path), 1):
        if pattern.search(line):
          offenders.append(f"{m}:{n}: {line.strip()}")
  assert not offenders, offenders
