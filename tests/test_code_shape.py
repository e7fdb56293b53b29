"""The shape of the code, checked: one-way imports, functions a screen long, documented parameters.

These tests read the package's source (they import nothing from it but the
file list), so they say the same on an editable install and on the wheel:

- **no import cycle** among gedenb's modules, counting every import, also the
  ones inside functions (a lazy import hides a cycle, it does not remove it);
- **no function body longer than** :data:`MAX_BODY_LINES` lines (its
  docstring and the bodies of functions nested in it not counted; those are
  checked on their own), except a compiled kernel whose docstring says why
  it is not split, with the measurement (the words ``Not split:``);
- **numpydoc parameters**: every public function and public method of a
  public class that takes arguments has a ``Parameters`` section naming each
  of them, in order, and nothing else.
"""

from __future__ import annotations

import ast
import re

import support

PACKAGE = support.PACKAGE_ROOT / "gedenb"
MAX_BODY_LINES = 80
_KERNEL_DECORATORS = re.compile(r"^(njit|pnjit|jit|numba\.njit|numba\.jit|_numba\.njit|_numba\.pnjit)\b")


def _modules() -> dict:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()
_TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


def _imported(module: str, node, is_package: bool) -> list:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "gedenb"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "gedenb":
        return []
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def import_graph() -> dict:
    """Module -> the gedenb modules it imports (anywhere in its source, ``TYPE_CHECKING`` blocks too)."""
    graph = {}
    for name, tree in _TREES.items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for dep in _imported(name, node, MODULES[name].name == "__init__.py"):
                    while dep not in MODULES and "." in dep:
                        dep = dep.rsplit(".", 1)[0]
                    if dep in MODULES and dep != name:
                        deps.add(dep)
        graph[name] = deps
    return graph


def _parents(name: str) -> set:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph: dict):
    """One import cycle as a list of modules, or None.  A module importing its own parent package is
    not a cycle (the parent is initialised first), unless the parent imports it back."""
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if w in _parents(v) and v not in graph[w]:
                continue
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"gedenb": set(), "gedenb.x": {"gedenb"}}) is None
    assert find_cycle({"gedenb": {"gedenb.x"}, "gedenb.x": {"gedenb"}}) is not None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _docstring_lines(fn) -> int:
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[0].end_lineno - body[0].lineno + 1
    return 0


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def body_lines(fn) -> int:
    """Lines of ``fn``'s body without its docstring and without the functions defined inside it."""
    total = fn.end_lineno - fn.body[0].lineno + 1 - _docstring_lines(fn)
    for node in ast.walk(fn):
        if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not any(node is inner for outer in ast.walk(fn) if outer is not fn and outer is not node
                       and isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for inner in ast.walk(outer)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                total -= node.end_lineno - start + 1
    return total


def _is_kernel(fn) -> bool:
    return any(_KERNEL_DECORATORS.match(ast.unparse(d)) for d in fn.decorator_list)


def long_functions() -> list:
    out = []
    for name, tree in _TREES.items():
        for fn in _functions(tree):
            n = body_lines(fn)
            if n <= MAX_BODY_LINES:
                continue
            doc = ast.get_docstring(fn) or ""
            if _is_kernel(fn) and "Not split:" in doc:
                continue
            out.append(f"{name}.{fn.name} (line {fn.lineno}): {n} lines")
    return out


def test_body_lines_counts_code_only():
    fn = ast.parse('def f(a):\n    """Doc.\n\n    More.\n    """\n    x = 1\n\n    def g():\n'
                   '        return 2\n    return x\n').body[0]
    assert body_lines(fn) == 3       # "x = 1", the blank line, "return x"


def test_functions_are_a_screen_long():
    long = long_functions()
    assert not long, f"functions longer than {MAX_BODY_LINES} lines:\n" + "\n".join(long)


_PARAM_LINE = re.compile(r"^(\*{0,2}[A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*\*{0,2}[A-Za-z_][A-Za-z0-9_]*)*)\s*(?::.*)?$")


def documented_parameters(doc: str):
    """Names listed in a numpydoc ``Parameters`` section (None if there is none)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() == "Parameters" and set(lines[i + 1].strip()) == {"-"}:
            break
    else:
        return None
    names = []
    for line in lines[i + 2:]:
        if line.strip() and not line.startswith((" ", "\t")):
            if set(line.strip()) == {"-"}:      # the underline of the next section
                names.pop() if names else None
                break
            m = _PARAM_LINE.match(line.strip())
            if m:
                names += [n.strip() for n in m.group(1).split(",")]
    return names


def _signature_names(fn, method: bool) -> list:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args]
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    names += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return names


def _public(name: str) -> bool:
    return not name.startswith("_")


def public_callables():
    """(where, function node, is_method) for every public function and public method of a public class
    in a public module (``__main__`` and ``_private`` modules excluded)."""
    for name, tree in _TREES.items():
        if not all(_public(p) for p in name.split(".")):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
                yield f"{name}.{node.name}", node, False
            elif isinstance(node, ast.ClassDef) and _public(node.name):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(item.name) \
                            and not any(ast.unparse(d).endswith(("setter", "deleter")) for d in item.decorator_list):
                        yield f"{name}.{node.name}.{item.name}", item, True


def undocumented_parameters() -> list:
    out = []
    for where, fn, method in public_callables():
        names = _signature_names(fn, method)
        if not names:
            continue
        listed = documented_parameters(ast.get_docstring(fn) or "")
        if listed is None:
            out.append(f"{where}: no Parameters section (takes {', '.join(names)})")
        elif listed != names:
            out.append(f"{where}: Parameters lists {listed}, the signature has {names}")
    return out


def test_documented_parameters_reads_numpydoc():
    doc = "Do.\n\nParameters\n----------\nx, y : int\n    Two.\n*args\n    More.\nz : str, optional\n\n" \
          "Returns\n-------\nint\n"
    assert documented_parameters(doc) == ["x", "y", "*args", "z"]
    assert documented_parameters("Do.\n\nReturns\n-------\nint\n") is None


def test_public_functions_document_their_parameters():
    missing = undocumented_parameters()
    assert not missing, f"{len(missing)} public functions without matching numpydoc Parameters:\n" + "\n".join(missing)


if __name__ == "__main__":   # the lists, for working through them
    import sys

    print("cycle:", find_cycle(import_graph()))
    print("\n".join(long_functions()))
    print("\n".join(undocumented_parameters()))
    sys.exit(0)
