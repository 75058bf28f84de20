"""The curated model catalog: instruct models a person can download from inside MemDesk.

The catalog is a versioned JSON file shipped in resources/models/catalog.json; it is never
fetched at run time, so what MemDesk offers changes only with a MemDesk release that a
person chose to install. Each entry names a GGUF file (llama.cpp, every platform) and,
where one exists, an MLX 4-bit repository (Apple Silicon). Sizes are approximate; the real
size and the sha256 come from the Hub when a download starts (engine/llm/hub.py).
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from memdesk.engine.errors import InvalidInputError, NotFoundError

CATALOG_RESOURCE = "models/catalog.json"
FORMAT = 1
GGUF, MLX = "gguf", "mlx"
FORMATS = (GGUF, MLX)

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
GB = 1_000_000_000  # sizes are shown the way disks and the Hub count them


@dataclass(frozen=True)
class GgufFile:
    repo: str
    file: str  # path of the .gguf inside the repository
    revision: str
    quant: str
    size_bytes: int  # approximate; the Hub's X-Linked-Size is what a download trusts
    sha256: str | None  # None: taken from the Hub's LFS metadata when the download starts


@dataclass(frozen=True)
class MlxRepo:
    repo: str  # a whole Hugging Face folder (config, tokenizer, 4-bit safetensors)
    revision: str
    size_bytes: int  # approximate, all files together


@dataclass(frozen=True)
class CatalogEntry:
    name: str  # what people type: `memdesk model download NAME`
    title: str
    family: str
    params_b: float
    context_length: int  # the longest context the model was trained for
    ram_gb: float  # memory to chat at MemDesk's default context, weights + KV cache + runtime
    licence: str
    licence_url: str
    good_for: str
    gguf: GgufFile
    mlx: MlxRepo | None

    @property
    def formats(self) -> tuple[str, ...]:
        return (GGUF, MLX) if self.mlx else (GGUF,)

    @property
    def ram_bytes(self) -> int:
        return int(self.ram_gb * GB)

    def size_bytes(self, fmt: str) -> int:
        return self.mlx.size_bytes if fmt == MLX and self.mlx else self.gguf.size_bytes

    def repo(self, fmt: str) -> str:
        return self.mlx.repo if fmt == MLX and self.mlx else self.gguf.repo


@dataclass(frozen=True)
class Catalog:
    version: str
    entries: tuple[CatalogEntry, ...]
    notes: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries)

    def find(self, name: str) -> CatalogEntry | None:
        wanted = name.strip().lower()
        return next((entry for entry in self.entries if entry.name == wanted), None)

    def get(self, name: str) -> CatalogEntry:
        entry = self.find(name)
        if entry is None:
            close = difflib.get_close_matches(name.strip().lower(), self.names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise NotFoundError(f"No model called {name!r} in the catalog.{hint} "
                                "`memdesk model list` shows every name.")
        return entry


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with this MemDesk (parsed once per process)."""
    text = files("memdesk.resources").joinpath(CATALOG_RESOURCE).read_text(encoding="utf-8")
    return parse_catalog(json.loads(text), source=CATALOG_RESOURCE)


def load_catalog_file(path: Path) -> Catalog:
    """A catalog from another file (tests, or a packager's own list); checked like the shipped one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"Cannot read the model catalog {path}: {exc}. Fix the file or remove it.") from exc
    return parse_catalog(data, source=str(path))


def parse_catalog(data: Any, *, source: str) -> Catalog:
    """Check every field, so a mistake in the file is named instead of failing mid-download."""
    def bad(where: str, what: str) -> InvalidInputError:
        return InvalidInputError(f"The model catalog {source} is invalid: {where} {what}. Fix that entry.")

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise bad("the file", f"must be a JSON object with \"format\": {FORMAT}")
    if not isinstance(data.get("version"), str) or not isinstance(data.get("models"), list):
        raise bad("the file", "needs a \"version\" string and a \"models\" list")
    entries: list[CatalogEntry] = []
    for index, raw in enumerate(data["models"]):
        where = f"model #{index + 1}" + (f" ({raw.get('name')!r})" if isinstance(raw, dict) else "")
        if not isinstance(raw, dict):
            raise bad(where, "is not an object")
        entries.append(_entry(raw, lambda what, w=where: bad(w, what)))
    names = [entry.name for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise bad("the list", f"names {', '.join(repeated)} more than once")
    notes = data.get("notes", [])
    return Catalog(data["version"], tuple(entries), tuple(n for n in notes if isinstance(n, str)))


def _entry(raw: dict, bad) -> CatalogEntry:
    def text(key: str, mapping: dict = raw) -> str:
        value = mapping.get(key)
        if not isinstance(value, str) or not value.strip():
            raise bad(f"needs a non-empty {key!r}")
        return value.strip()

    def number(key: str, mapping: dict = raw, kind=(int, float)) -> float:
        value = mapping.get(key)
        if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
            raise bad(f"needs a positive {key!r}")
        return value

    name = text("name")
    if not _NAME.match(name):
        raise bad("has a name that is not lower-case letters, digits, '.', '-' or '_'")
    gguf_raw, mlx_raw = raw.get("gguf"), raw.get("mlx")
    if not isinstance(gguf_raw, dict):
        raise bad("needs a \"gguf\" object")
    repo, file = text("repo", gguf_raw), text("file", gguf_raw)
    if not _REPO.match(repo):
        raise bad(f"has a gguf repo {repo!r} that is not owner/name")
    if not file.endswith(".gguf") or file.startswith("/") or ".." in file.split("/"):
        raise bad(f"has a gguf file {file!r} that is not a relative path ending in .gguf")
    sha = gguf_raw.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        raise bad("has a sha256 that is not 64 lower-case hex digits (use null to take the Hub's)")
    gguf = GgufFile(repo, file, text("revision", gguf_raw), text("quant", gguf_raw),
                    int(number("size_bytes", gguf_raw, int)), sha)
    mlx = None
    if mlx_raw is not None:
        if not isinstance(mlx_raw, dict):
            raise bad("has an \"mlx\" that is neither an object nor null")
        mlx_repo = text("repo", mlx_raw)
        if not _REPO.match(mlx_repo):
            raise bad(f"has an mlx repo {mlx_repo!r} that is not owner/name")
        mlx = MlxRepo(mlx_repo, text("revision", mlx_raw), int(number("size_bytes", mlx_raw, int)))
    return CatalogEntry(name=name, title=text("title"), family=text("family"), params_b=float(number("params_b")),
                        context_length=int(number("context_length", kind=int)), ram_gb=float(number("ram_gb")),
                        licence=text("licence"), licence_url=text("licence_url"), good_for=text("good_for"),
                        gguf=gguf, mlx=mlx)
