"""The models a person has: catalog downloads in the models folder, and models added in place.

- The models folder is `<data folder>/models`, or a folder the person chose
  (`ModelLibrary.set_folder`); it is shared by every profile, since a model is gigabytes.
- A catalog model lives in `<folder>/<name>/` (GGUF) or `<folder>/<name>-mlx/` (MLX). It
  counts as installed only when its `download.json` manifest is there, written after every
  file was verified; an MLX folder is assembled under `<name>-mlx.partial/` and renamed
  into place whole.
- Models the person already has (a .gguf anywhere, an LM Studio or GPT4All folder, an MLX
  folder) are added by reference in `<data folder>/models/library.json`: nothing is copied,
  and removing one only forgets it.

Everything here is synchronous and may take minutes (downloads): the GUI calls it off the GUI
thread and passes a CancelToken and a progress callback.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from memdesk.engine.errors import InvalidInputError, MemDeskError, ModelError, NotFoundError
from memdesk.engine.llm import hub
from memdesk.engine.llm.catalog import GGUF, MLX, Catalog, CatalogEntry, load_catalog
from memdesk.engine.llm.download import (
    CancelToken,
    DownloadOptions,
    ProgressCallback,
    ProgressMeter,
    check_free_space,
    discard_partial,
    download_file,
    part_paths,
)
from memdesk.engine.vault.private_files import make_private_dir, write_private

LIBRARY_FILE = "library.json"
MANIFEST = "download.json"
STAGING_SUFFIX = ".partial"
STAGING_STATE = ".memdesk-partial.json"
LIBRARY_FORMAT = 1
# Files of an MLX repository that a model folder does not need.
_MLX_SKIP = (".gitattributes",)


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path  # a .gguf file or an MLX folder: what Settings' model path takes
    backend: str  # "llama.cpp" | "mlx"
    source: str  # "catalog" (downloaded by MemDesk) | "added" (the person's own file, not copied)
    size_bytes: int
    origin: str  # the Hub repository, or "LM Studio", "GPT4All", "file", "folder"
    present: bool = True  # an added model may sit on a drive that is unplugged now

    def to_dict(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class PartialDownload:
    name: str
    fmt: str
    done_bytes: int


@dataclass(frozen=True)
class RemoveReport:
    name: str
    deleted: tuple[Path, ...]  # files and folders deleted (catalog downloads, partial downloads)
    forgotten: bool  # an added model was forgotten; its files were left alone
    freed_bytes: int


def default_models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def known_model_folders() -> list[tuple[str, Path]]:
    """Where LM Studio and GPT4All keep their models on this platform (those that exist)."""
    home = Path.home()
    candidates = [("LM Studio", home / ".lmstudio" / "models"), ("LM Studio", home / ".cache" / "lm-studio" / "models")]
    if sys.platform == "darwin":
        candidates.append(("GPT4All", home / "Library" / "Application Support" / "nomic.ai" / "GPT4All"))
    elif sys.platform == "win32":
        local = Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local"))
        candidates.append(("GPT4All", local / "nomic.ai" / "GPT4All"))
    else:
        candidates.append(("GPT4All", home / ".local" / "share" / "nomic.ai" / "GPT4All"))
    return [(label, path) for label, path in candidates if path.is_dir()]


class ModelLibrary:
    def __init__(self, data_dir: Path, catalog: Catalog | None = None):
        self.home = default_models_dir(data_dir)
        self.index_path = self.home / LIBRARY_FILE
        self.catalog = catalog or load_catalog()

    # ---------------------------------------------------------- the folder
    @property
    def folder(self) -> Path:
        chosen = self._index().get("folder")
        return Path(chosen) if isinstance(chosen, str) and chosen else self.home

    def set_folder(self, folder: Path | None) -> Path:
        """Downloads go to `folder` from now on (None: back to the data folder's). Nothing is moved."""
        index = self._index()
        if folder is None:
            index["folder"] = None
        else:
            folder = Path(folder).expanduser().absolute()
            if folder.exists() and not folder.is_dir():
                raise InvalidInputError(f"{folder} is a file; choose a folder for the models.")
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise InvalidInputError(f"MemDesk cannot write to {folder}; choose a folder you own.")
            index["folder"] = str(folder)
        self._save(index)
        return self.folder

    # ---------------------------------------------------------- catalog models
    def target(self, entry: CatalogEntry, fmt: str = GGUF) -> Path:
        """The .gguf file or MLX folder a download of `entry` produces."""
        if fmt == MLX:
            return self.folder / f"{entry.name}-mlx"
        return self.folder / entry.name / Path(entry.gguf.file).name

    def is_installed(self, entry: CatalogEntry, fmt: str = GGUF) -> bool:
        target = self.target(entry, fmt)
        manifest = (target if fmt == MLX else target.parent) / MANIFEST
        return target.exists() and manifest.is_file()

    def partial(self, entry: CatalogEntry, fmt: str = GGUF) -> PartialDownload | None:
        """What an unfinished download left (it resumes from there)."""
        target = self.target(entry, fmt)
        if fmt == MLX:
            staging = target.with_name(target.name + STAGING_SUFFIX)
            if not staging.is_dir():
                return None
            done = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file() and p.name != STAGING_STATE)
            return PartialDownload(entry.name, fmt, done)
        part = part_paths(target)[0]
        return PartialDownload(entry.name, fmt, part.stat().st_size) if part.exists() else None

    def download(self, entry: CatalogEntry, fmt: str = GGUF, *, cancel: CancelToken | None = None,
                 on_progress: ProgressCallback | None = None,
                 options: DownloadOptions = DownloadOptions()) -> InstalledModel:
        """Download, verify and install one catalog model (resuming what an earlier try left)."""
        if fmt not in entry.formats:
            raise InvalidInputError(f"{entry.name} has no {fmt.upper()} version; choose {' or '.join(entry.formats)}.")
        if self.is_installed(entry, fmt):
            return self._catalog_model(entry, fmt)
        if fmt == MLX:
            self._download_mlx(entry, cancel, on_progress, options)
        else:
            self._download_gguf(entry, cancel, on_progress, options)
        return self._catalog_model(entry, fmt)

    def _download_gguf(self, entry, cancel, on_progress, options) -> None:
        from memdesk.engine.llm.base import check_gguf

        spec = entry.gguf
        remote = hub.file_metadata(spec.repo, spec.file, spec.revision, timeouts=options.timeouts)
        dest = self.target(entry, GGUF)
        make_private_dir(self.home)
        result = download_file(remote, dest, expected_sha256=spec.sha256, cancel=cancel, on_progress=on_progress,
                               options=options, label=entry.name)
        try:
            check_gguf(dest)  # the bytes are what the Hub published; make sure they are a model too
        except ModelError:
            dest.unlink()
            raise
        self._write_manifest(dest.parent, entry, GGUF, spec.repo, remote.commit,
                             {remote.filename: result.sha256 or ""}, result.size)

    def _download_mlx(self, entry, cancel, on_progress, options) -> None:
        from memdesk.engine.llm.registry import check_model_path

        spec = entry.mlx
        files = [f for f in hub.repo_files(spec.repo, spec.revision, timeouts=options.timeouts)
                 if f.filename not in _MLX_SKIP]
        for remote in files:
            if remote.filename.startswith("/") or ".." in remote.filename.split("/") or "\\" in remote.filename:
                raise MemDeskError(f"{spec.repo} lists a file named {remote.filename!r}, which MemDesk will not "
                                   "write. Choose another model.")
        final = self.target(entry, MLX)
        staging = final.with_name(final.name + STAGING_SUFFIX)
        make_private_dir(self.home)
        staging.mkdir(parents=True, exist_ok=True)
        state_path = staging / STAGING_STATE
        try:
            verified = json.loads(state_path.read_text(encoding="utf-8")).get("verified", {})
        except (OSError, ValueError, AttributeError):
            verified = {}
        done = [f for f in files if (staging / f.filename).is_file() and verified.get(f.filename) == _identity(f)
                and (staging / f.filename).stat().st_size == f.size]
        total = sum(f.size for f in files)
        left = [f for f in files if f not in done]
        have = sum(part_paths(staging / f.filename)[0].stat().st_size for f in left
                   if part_paths(staging / f.filename)[0].exists())
        check_free_space(staging, sum(f.size for f in left) - have, options.reserve_bytes, entry.name)
        meter = ProgressMeter(entry.name, total, on_progress, options.progress_interval_s)
        meter.reused(sum(f.size for f in done))
        for remote in left:
            download_file(remote, staging / remote.filename, cancel=cancel, options=options, meter=meter,
                          label=f"{entry.name} ({remote.filename})")
            verified[remote.filename] = _identity(remote)
            state_path.write_text(json.dumps({"verified": verified}), encoding="utf-8")
        check_model_path(staging, "mlx")
        state_path.unlink()
        self._write_manifest(staging, entry, MLX, spec.repo, files[0].commit if files else None,
                             {f.filename: f.sha256 or f.git_sha1 or "" for f in files}, total)
        if final.exists():
            raise MemDeskError(f"{final} exists but is not a complete download; delete it (`memdesk model remove "
                               f"{entry.name}`), then download again.")
        os.replace(staging, final)

    def _write_manifest(self, folder: Path, entry: CatalogEntry, fmt: str, repo: str, commit: str | None,
                        hashes: dict[str, str], size: int) -> None:
        manifest = {"format": 1, "name": entry.name, "fmt": fmt, "repo": repo, "commit": commit, "size_bytes": size,
                    "verified": hashes, "catalog_version": self.catalog.version,
                    "completed_at": datetime.now(UTC).isoformat(timespec="seconds")}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    def _catalog_model(self, entry: CatalogEntry, fmt: str) -> InstalledModel:
        target = self.target(entry, fmt)
        return InstalledModel(entry.name, target, "mlx" if fmt == MLX else "llama.cpp", "catalog",
                              _du(target), entry.repo(fmt))

    # ---------------------------------------------------------- everything installed
    def installed(self) -> list[InstalledModel]:
        out = [self._catalog_model(entry, fmt) for entry in self.catalog.entries for fmt in entry.formats
               if self.is_installed(entry, fmt)]
        for item in self._index().get("added", []):
            path = Path(item["path"])
            out.append(InstalledModel(item["name"], path, item["backend"], "added",
                                      _du(path) if path.exists() else 0, item.get("origin", "file"), path.exists()))
        return out

    def find(self, name: str) -> list[InstalledModel]:
        wanted = name.strip().lower()
        return [model for model in self.installed() if model.name == wanted]

    # ---------------------------------------------------------- models the person has
    def add(self, path: Path, name: str | None = None) -> list[InstalledModel]:
        """Register a .gguf, an MLX folder, or every .gguf under a folder (LM Studio, GPT4All), in place."""
        from memdesk.engine.llm.base import check_gguf
        from memdesk.engine.llm.registry import check_model_path

        path = Path(path).expanduser().absolute()
        if not path.exists():
            raise NotFoundError(f"{path} does not exist. Give a .gguf file, an MLX model folder, or a folder of "
                                ".gguf files (LM Studio, GPT4All).")
        if path.is_dir() and (path / "config.json").is_file():
            check_model_path(path, "mlx")
            found = [(path, "mlx")]
        elif path.is_dir():
            found = [(p, "llama.cpp") for p in _gguf_files(path)]
            if not found:
                raise InvalidInputError(f"No .gguf model and no MLX model folder in {path}. Choose the folder that "
                                        "holds the .gguf files, or the file itself.")
        else:
            check_gguf(path)
            found = [(path, "llama.cpp")]
        if name is not None and len(found) > 1:
            raise InvalidInputError(f"{path} holds {len(found)} models; --name names one model, so leave it out.")
        index = self._index()
        added = index.setdefault("added", [])
        known = {Path(item["path"]): item for item in added}
        result: list[InstalledModel] = []
        for model_path, backend in found:
            if backend == "llama.cpp" and model_path != path:
                try:
                    check_gguf(model_path)
                except ModelError:
                    continue  # one damaged file in a folder of models does not stop the others
            item = known.get(model_path)
            if item is None:
                item = {"name": self._unique_name(name or _name_for(model_path), added), "path": str(model_path),
                        "backend": backend, "origin": _origin(model_path)}
                added.append(item)
                known[model_path] = item
            result.append(InstalledModel(item["name"], model_path, backend, "added", _du(model_path), item["origin"]))
        self._save(index)
        return result

    def _unique_name(self, wanted: str, added: list[dict]) -> str:
        if not re.match(r"^[a-z0-9][a-z0-9._-]{0,63}$", wanted):
            raise InvalidInputError(f"{wanted!r} cannot be a model name: "
                                    "use lower-case letters, digits, '.', '-', '_'.")
        taken = set(self.catalog.names) | {item["name"] for item in added}
        name, n = wanted, 2
        while name in taken:
            name, n = f"{wanted}-{n}", n + 1
        return name

    # ---------------------------------------------------------- removing
    def remove(self, name: str) -> RemoveReport:
        """Delete a catalog download (and any partial one); forget an added model, leaving its files."""
        wanted = name.strip().lower()
        index = self._index()
        added = index.get("added", [])
        kept = [item for item in added if item["name"] != wanted]
        if len(kept) != len(added):
            index["added"] = kept
            self._save(index)
            return RemoveReport(wanted, (), True, 0)
        entry = self.catalog.find(wanted)
        if entry is None:
            raise NotFoundError(f"No model called {name!r} is installed or added. `memdesk model list` shows them.")
        deleted: list[Path] = []
        freed = 0
        for fmt in entry.formats:
            target = self.target(entry, fmt)
            if fmt == GGUF:
                for path in discard_partial(target):
                    deleted.append(path)
                candidates = [target.parent]
            else:
                candidates = [target, target.with_name(target.name + STAGING_SUFFIX)]
            for path in candidates:
                if path.is_dir():
                    freed += _du(path)
                    shutil.rmtree(path)
                    deleted.append(path)
        if not deleted:
            raise NotFoundError(f"{entry.name} is not downloaded, so there is nothing to remove.")
        return RemoveReport(entry.name, tuple(deleted), False, freed)

    # ---------------------------------------------------------- library.json
    def _index(self) -> dict:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": LIBRARY_FORMAT, "folder": None, "added": []}
        except (OSError, ValueError) as exc:
            raise MemDeskError(f"The model list {self.index_path} cannot be read ({exc}). Fix or delete it (only "
                               "models added from other folders are listed there; their files are not affected).") \
                from exc
        if not isinstance(data, dict) or not isinstance(data.get("added", []), list):
            raise MemDeskError(f"The model list {self.index_path} is not what MemDesk wrote. Delete it and add "
                               "your own models again (their files are not affected).")
        data["added"] = [item for item in data.get("added", []) if isinstance(item, dict)
                         and {"name", "path", "backend"} <= item.keys()]
        return data

    def _save(self, index: dict) -> None:
        make_private_dir(self.home)
        index["format"] = LIBRARY_FORMAT
        write_private(self.index_path, (json.dumps(index, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _identity(remote: hub.RemoteFile) -> str:
    return f"{remote.size}:{remote.sha256 or remote.git_sha1}"


def _gguf_files(folder: Path) -> list[Path]:
    """Chat models under a folder: not vision projectors, and only the first part of a split model."""
    out = []
    for path in sorted(folder.rglob("*.gguf")):
        lower = path.name.lower()
        if lower.startswith("mmproj") or not path.is_file():
            continue
        split = re.search(r"-(\d{5})-of-(\d{5})\.gguf$", lower)
        if split and split.group(1) != "00001":
            continue  # llama.cpp opens the other parts from the first
        out.append(path)
    return out


def _name_for(path: Path) -> str:
    stem = path.name if path.is_dir() else path.stem
    stem = re.sub(r"-\d{5}-of-\d{5}$", "", stem)
    name = re.sub(r"[^a-z0-9._-]+", "-", stem.lower()).strip("-._")
    return (name or "model")[:64]


def _origin(path: Path) -> str:
    text = str(path).lower()
    if "lmstudio" in text or "lm-studio" in text:
        return "LM Studio"
    if "gpt4all" in text:
        return "GPT4All"
    return "folder" if path.is_dir() else "file"


def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
