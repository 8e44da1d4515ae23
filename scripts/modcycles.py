#!/usr/bin/env python3
"""Import cycles between the files of each crate, and source files over a line budget.

A file's dependencies are the crate modules it names (`crate::a::b`, `super::x`, and
`mod`-relative paths resolved against the file's own module). Prints each cycle found and
each file over the budget; exits 1 if there is either. Usage: scripts/modcycles.py [LINES]
"""
import os, re, sys

BUDGET = int(sys.argv[1]) if len(sys.argv) > 1 else 700
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = ["storage", "scanner", "gateway", "conformance"]


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def main():
    bad = False
    for crate in CRATES:
        src = os.path.join(ROOT, crate, "src")
        files = {}
        for d, _, names in os.walk(src):
            for n in names:
                if n.endswith(".rs"):
                    p = os.path.join(d, n)
                    files[module_of(src, p)] = p
        if os.path.basename(files.get((), "")) == "main.rs" and "lib.rs" not in os.listdir(src):
            pass
        mods = set(files)
        deps = {m: set() for m in mods}
        for m, p in files.items():
            text = open(p).read()
            # Strip comments and test modules (tests may reach anywhere).
            text = re.sub(r"//[^\n]*", "", text)
            cut = re.search(r"#\[cfg\(test\)\]\s*mod tests", text)
            if cut:
                text = text[: cut.start()]
            for mo in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
                head, tail = mo.group(1), mo.group(2).split("::")[1:]
                base = () if head == "crate" else (m[:-1] if not p.endswith("mod.rs") else m[:-1])
                if head == "super" and p.endswith("mod.rs"):
                    base = m[:-1]
                elif head == "super":
                    base = m[:-1]
                target = base + tuple(tail)
                # The longest prefix naming a file is the dependency.
                while target and target not in mods:
                    target = target[:-1]
                if target and target != m and not (m[: len(target)] == target):
                    deps[m].add(target)
        # Cycles: strongly connected components of size > 1.
        index, low, stack, on, comps = {}, {}, [], set(), []
        counter = [0]

        def strong(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in deps[v]:
                if w not in index:
                    strong(w)
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
                    comps.append(comp)

        sys.setrecursionlimit(10000)
        for v in sorted(mods):
            if v not in index:
                strong(v)
        for comp in comps:
            bad = True
            names = sorted("::".join(c) or "lib" for c in comp)
            print(f"{crate}: import cycle between {', '.join(names)}")
            for c in sorted(comp):
                inner = sorted("::".join(d) for d in deps[c] if d in comp)
                print(f"    {'::'.join(c) or 'lib'} -> {', '.join(inner)}")
        for m, p in sorted(files.items()):
            n = sum(1 for _ in open(p))
            if n > BUDGET:
                bad = True
                print(f"{os.path.relpath(p, ROOT)}: {n} lines (budget {BUDGET})")
    tests = []
    for crate in CRATES:
        t = os.path.join(ROOT, crate, "tests")
        if os.path.isdir(t):
            for d, _, names in os.walk(t):
                for n in names:
                    if n.endswith(".rs"):
                        p = os.path.join(d, n)
                        n_lines = sum(1 for _ in open(p))
                        if n_lines > BUDGET:
                            tests.append((p, n_lines))
    for p, n in tests:
        print(f"{os.path.relpath(p, ROOT)}: {n} lines (budget {BUDGET}; a test suite)")
    sys.exit(1 if bad else 0)


main()
