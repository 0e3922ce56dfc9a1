#!/usr/bin/env python3
"""The shape of the Rust code under a folder (default `src`), as the architecture issue
measures it: line count, files over 450 lines, functions over 80 lines (from the `fn` line
to its closing brace at the same indentation), and groups of top-level modules that import
each other (strongly connected through `crate::NAME` uses outside `#[cfg(test)]`).

    python3 bench/code_shape.py [SRC]
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "src"
files = sorted(
    os.path.join(folder, name)
    for folder, _, names in os.walk(root)
    for name in names
    if name.endswith(".rs")
)
texts = {path: open(path, encoding="utf-8").read() for path in files}

print("lines:", sum(text.count("\n") for text in texts.values()))
print("files over 450 lines:")
for path, text in texts.items():
    if text.count("\n") > 450:
        print(f"  {text.count(chr(10))} {path}")

print("functions over 80 lines:")
fn = re.compile(r"^(\s*)(pub(\((crate|super)\))? )?fn (\w+)")
for path, text in texts.items():
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        found = fn.match(lines[i])
        if found:
            end = i + 1
            while end < len(lines) and lines[end] != found.group(1) + "}":
                end += 1
            if end - i + 1 > 80:
                print(f"  {end - i + 1} {path} {found.group(5)}")
            i = end
        i += 1

uses = {}
for path, text in texts.items():
    top = os.path.relpath(path, root).split(os.sep)[0].removesuffix(".rs")
    if top in ("lib", "main"):
        continue
    code = text.split("#[cfg(test)]")[0]
    uses.setdefault(top, set()).update(
        name for name in re.findall(r"crate::(\w+)", code) if name != top
    )

index, low, stack, on_stack, groups = {}, {}, [], set(), []
sys.setrecursionlimit(10000)


def visit(module):
    index[module] = low[module] = len(index)
    stack.append(module)
    on_stack.add(module)
    for other in uses.get(module, ()):
        if other not in uses:
            continue
        if other not in index:
            visit(other)
            low[module] = min(low[module], low[other])
        elif other in on_stack:
            low[module] = min(low[module], index[other])
    if low[module] == index[module]:
        group = []
        while True:
            other = stack.pop()
            on_stack.discard(other)
            group.append(other)
            if other == module:
                break
        if len(group) > 1:
            groups.append(sorted(group))


for module in sorted(uses):
    if module not in index:
        visit(module)
print("modules that import each other:", groups or "none")
