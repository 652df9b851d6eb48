"""Edits of Python source for the rerun tests: reword what is not code, or change one definition."""

from __future__ import annotations

import ast
import io
import tokenize


def reworded(source: str) -> str:
    """``source`` with every docstring and bare string statement reworded and a comment on every line."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    strings = [
        node for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    ]
    for node in sorted(strings, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        first, last = node.lineno - 1, node.end_lineno - 1  # offsets count UTF-8 bytes
        head = lines[first].encode()[: node.col_offset].decode()
        tail = lines[last].encode()[node.end_col_offset :].decode()
        lines[first : last + 1] = [head + '"""Reworded."""' + tail]
    text = "".join(lines)
    ends = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type in (tokenize.NEWLINE, tokenize.NL)}
    out = text.split("\n")
    for row in ends:  # a comment at the end of every line that can take one
        out[row - 1] += "  # note"
    return "\n".join(out)


def with_statement_added(source: str, name: str, statement: str = "_edited = True") -> str:
    """``source`` with ``statement`` added at the end of the body of top-level definition ``name``."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name)
    lines = source.split("\n")
    indent = " " * node.body[0].col_offset
    lines.insert(node.body[-1].end_lineno, indent + statement)
    return "\n".join(lines)
