"""The desktop app's log file: what failed and where, never what was said.

It lives in the profile folder (`logs/memdesk.log`, rotated at 1 MB, three old files kept)
so that a failure in a background loop can be looked at after the fact. Log messages and
exception texts can quote a memory (an engine error names the tag that was too long, a
model error repeats its prompt), and the vault's promise is that no plaintext memory lies
in the data folder. So the file gets each record's format string as written in the code,
its numbers, the exception's type and the file/line/function of each frame: never a
string argument, an exception message or a local variable.
"""
from __future__ import annotations

import logging
import logging.handlers
import time
import traceback
from pathlib import Path

from memdesk.engine.vault.paths import ProfilePaths
from memdesk.engine.vault.private_files import make_private_dir

MAX_BYTES = 1_000_000
BACKUPS = 3
_REDACTED = "‹…›"
_FORMAT_LINE = "%s %s %s: %s"


def log_path(paths: ProfilePaths) -> Path:
    return paths.root / "logs" / "memdesk.log"


class PrivateFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        line = _FORMAT_LINE % (when, record.levelname, record.name, _message(record))
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + _frames(record.exc_info[1])
        return line


def _message(record: logging.LogRecord) -> str:
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    args = record.args if isinstance(record.args, tuple) else ()
    # set where every argument is ours (engine.scheduler.health)
    safe_strings = bool(getattr(record, "safe_args", False))
    shown = []
    for arg in args:
        if isinstance(arg, (bool, int, float)) or arg is None:
            shown.append(arg)
        elif isinstance(arg, str) and safe_strings:
            shown.append(arg)
        elif isinstance(arg, BaseException):
            shown.append(type(arg).__name__)
        else:
            shown.append(_REDACTED)
    try:
        return template % tuple(shown) if shown else template
    except (TypeError, ValueError):
        return template  # %d given a redacted string, or a format the arguments do not fit


def _frames(exc: BaseException) -> str:
    """Exception types and frames, the causes too; no messages."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = traceback.extract_tb(current.__traceback__)
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(frames))
        parts.append(f"  {type(current).__module__}.{type(current).__qualname__}" + (f" at {where}" if where else ""))
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def install(paths: ProfilePaths, level: int = logging.WARNING) -> logging.Handler:
    """Add the rotating log file to the root logger; returns the handler (remove it to stop)."""
    path = log_path(paths)
    make_private_dir(path.parent, owned_from=paths.data_dir / "profiles")
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(PrivateFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > level:
        root.setLevel(level)
    return handler
