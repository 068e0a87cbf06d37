"""Place configuration problems at their field: ConfigError lines → (field path, message, YAML line).

``ConfigError`` lines read ``<file>: <field.path>: <message> (got <value>)``; the field path
(``steps[1].steps[0].c_rate``) is looked up in the YAML text the user is editing, so the editor
can mark the very line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass(frozen=True)
class Problem:
    field: str  # e.g. "steps[1].c_rate", or "" when the line names no field
    message: str
    line: int | None = None  # 1-based line in the edited text, if found


def parse_problems(lines: list[str], file: str) -> list[tuple[str, str]]:
    """(field path, rest of the line) for each ConfigError line about ``file``."""
    out = []
    for text in lines:
        rest = text[len(file) + 2 :] if text.startswith(f"{file}: ") else text
        field, sep, message = rest.partition(": ")
        if not sep or " " in field.strip():  # e.g. "line 3, column 5: invalid YAML"
            m = re.match(r"line (\d+), column \d+: (.*)", rest)
            out.append((f"@{m.group(1)}", m.group(2)) if m else ("", rest))
        else:
            out.append((field, message))
    return out


def field_line(text: str, field: str) -> int | None:
    """1-based line of ``field`` (e.g. ``steps[1].steps[0].c_rate``) in YAML ``text``."""
    if field.startswith("@"):
        return int(field[1:])
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for name, index in _TOKEN.findall(field):
        if node is None:
            break
        if index:
            i = int(index)
            if not isinstance(node, yaml.SequenceNode) or i >= len(node.value):
                break
            node = node.value[i]
            line = node.start_mark.line + 1
        else:
            if not isinstance(node, yaml.MappingNode):
                break
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == name]
            if not match:
                break
            key, node = match[0]
            line = key.start_mark.line + 1
    return line


def locate(lines: list[str], file: str, text: str) -> list[Problem]:
    return [
        Problem(f if not f.startswith("@") else "", m, field_line(text, f) if f else None)
        for f, m in parse_problems(lines, file)
    ]
