"""YAML loading that remembers where every value came from.

Validation errors name a field by its path (``steps.2.weight``); users need
the line too, so we keep the node positions PyYAML's composer already has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rotator.errors import InputError


class YamlDocument:
    def __init__(self, path: Path, data: Any, root: yaml.Node | None):
        self.path = path
        self.data = data
        self._root = root

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """1-based line of the value at ``loc``, or of its closest existing parent."""
        node = self._root
        line = node.start_mark.line + 1 if node is not None else None
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                nxt = None
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                        nxt = v
                        line = k.start_mark.line + 1
                        break
                if nxt is None:
                    return line
                node = nxt
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
                if key >= len(node.value):
                    return line
                node = node.value[key]
                line = node.start_mark.line + 1
            else:
                return line
        return line


def load_yaml(path: Path) -> YamlDocument:
    """Parse one YAML file; a syntax error becomes an InputError with file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise InputError(f"invalid YAML: {problem}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=str(path)) from None
    return YamlDocument(path, data, root)
