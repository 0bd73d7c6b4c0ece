"""
The engineering rule's sizes (about 400 lines a module, 60 a function):
list what is over, from the source's syntax tree.

    python scripts/sizes.py                  # chatsvc/, limits 400 and 60
    python scripts/sizes.py bench 400 60

Exit status 1 if anything is over (a function's count includes its
docstring and decorators' line, as a reader sees it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def over(root: Path, module_limit: int, function_limit: int) -> list:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        if lines > module_limit:
            found.append((lines, f"{path}: module"))
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > function_limit:
                    found.append((length, f"{path}:{node.lineno}: {node.name}()"))
    return sorted(found, reverse=True)


def main(argv: list) -> int:
    root = Path(argv[0] if argv else "chatsvc")
    module_limit = int(argv[1]) if len(argv) > 1 else 400
    function_limit = int(argv[2]) if len(argv) > 2 else 60
    found = over(root, module_limit, function_limit)
    for length, what in found:
        print(f"{length:5d} lines  {what}")
    if not found:
        print(f"{root}: no module over {module_limit} lines, no function over {function_limit}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
