"""Files shipped in the `resources` package: prompt templates and grammars."""
from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def text(relative: str) -> str:
    return files("memdesk.resources").joinpath(relative).read_text(encoding="utf-8")
