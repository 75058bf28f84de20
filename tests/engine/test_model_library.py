"""The models folder: catalog downloads (GGUF and MLX folders) from a loopback Hub, models a
person already has (added in place), removing, and choosing another folder."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors.numpy import save as save_safetensors

from bench.hub_server import LoopbackHub
from memdesk.engine.errors import DownloadError, InvalidInputError, ModelError, NotFoundError
from memdesk.engine.llm.catalog import GGUF, MLX, parse_catalog
from memdesk.engine.llm.download import DownloadOptions
from memdesk.engine.llm.hub import Timeouts
from memdesk.engine.llm.library import MANIFEST, ModelLibrary, known_model_folders
from memdesk.engine.llm.registry import check_model_path, embedded_model_path

GGUF_REPO, GGUF_FILE = "org/Tiny-GGUF", "tiny-q4.gguf"
MLX_REPO = "org/Tiny-4bit"
FAST = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=60), retry_backoff_s=0, reserve_bytes=1 << 20)
WEIGHTS = save_safetensors({"w": np.arange(3_000_000, dtype=np.float32).reshape(1000, 3000)})  # 12 MB, real format


def catalog_with(**overrides):
    entry = {"name": "tiny", "title": "Tiny", "family": "Test", "params_b": 0.1, "context_length": 8192,
             "ram_gb": 0.5, "licence": "Apache-2.0", "licence_url": "https://example.org/licence",
             "good_for": "tests",
             "gguf": {"repo": GGUF_REPO, "file": GGUF_FILE, "revision": "main", "quant": "Q4_1",
                      "size_bytes": 98_000_000, "sha256": None},
             "mlx": {"repo": MLX_REPO, "revision": "main", "size_bytes": 12_000_000}}
    entry.update(overrides)
    return parse_catalog({"format": 1, "version": "test", "models": [entry]}, source="test")


@pytest.fixture
def hub(monkeypatch):
    server = LoopbackHub()
    server.add_file(GGUF_REPO, GGUF_FILE, embedded_model_path())
    server.add_file(MLX_REPO, ".gitattributes", b"*.safetensors filter=lfs\n")
    server.add_file(MLX_REPO, "config.json", json.dumps({"model_type": "llama"}).encode())
    server.add_file(MLX_REPO, "tokenizer.json", b'{"version": "1.0"}')
    server.add_file(MLX_REPO, "model.safetensors", WEIGHTS)
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


@pytest.fixture
def library(tmp_path):
    return ModelLibrary(tmp_path / "data", catalog_with())


def test_a_catalog_gguf_is_downloaded_verified_and_listed(hub, library):
    entry = library.catalog.get("tiny")
    assert not library.is_installed(entry) and library.installed() == []
    model = library.download(entry, GGUF, options=FAST)
    assert model.path == library.folder / "tiny" / GGUF_FILE and model.backend == "llama.cpp"
    assert model.path.read_bytes() == embedded_model_path().read_bytes()
    manifest = json.loads((model.path.parent / MANIFEST).read_text())
    assert manifest["verified"][GGUF_FILE] == hub.sha256(GGUF_REPO, GGUF_FILE)
    assert manifest["commit"] == hub.commits[GGUF_REPO] and manifest["catalog_version"] == "test"
    assert library.installed() == [model] and library.partial(entry) is None
    assert sorted(p.name for p in model.path.parent.iterdir()) == [MANIFEST, GGUF_FILE]
    requests = len(hub.requests)
    assert library.download(entry, GGUF, options=FAST) == model and len(hub.requests) == requests  # no re-download


def test_verified_bytes_that_are_not_a_gguf_are_not_installed(hub, library):
    hub.add_file(GGUF_REPO, "fake.gguf", b"PK\x03\x04 a zip file, not a model" * 1000, lfs=True)
    library = ModelLibrary(library.home.parent, catalog_with(gguf={
        "repo": GGUF_REPO, "file": "fake.gguf", "revision": "main", "quant": "Q4", "size_bytes": 1, "sha256": None}))
    entry = library.catalog.get("tiny")
    with pytest.raises(ModelError, match="is not a GGUF model"):
        library.download(entry, GGUF, options=FAST)
    assert not library.is_installed(entry) and list((library.folder / "tiny").iterdir()) == []


def test_an_mlx_folder_appears_only_whole_and_resumes_where_it_stopped(hub, library):
    entry = library.catalog.get("tiny")
    hub.faults.drop_after = 5_000_000  # in model.safetensors, the largest file
    with pytest.raises(DownloadError, match="kept, so running the download again resumes"):
        library.download(entry, MLX, options=DownloadOptions(max_retries=0, retry_backoff_s=0,
                                                             reserve_bytes=1 << 20))
    final = library.target(entry, MLX)
    assert not final.exists() and not library.is_installed(entry, MLX)
    assert library.partial(entry, MLX).done_bytes >= 5_000_000
    events = []
    model = library.download(entry, MLX, options=FAST, on_progress=events.append)
    assert model.path == final and model.backend == "mlx" and check_model_path(final, "mlx") == "mlx"
    assert sorted(p.name for p in final.iterdir()) == sorted(
        [MANIFEST, "config.json", "model.safetensors", "tokenizer.json"])
    assert (final / "model.safetensors").read_bytes() == WEIGHTS
    assert not final.with_name(final.name + ".partial").exists()
    # Files finished before the cut were not fetched again, and the big one resumed at the cut.
    resolves = [r for r in hub.requests if r.method == "GET" and r.path.endswith("/config.json")]
    assert len(resolves) == 1 and hub.ranges()[-1] == "bytes=5000000-"
    assert events[-1].done_bytes == events[-1].total_bytes == sum(len(b) for b in (
        WEIGHTS, b'{"version": "1.0"}', json.dumps({"model_type": "llama"}).encode()))


def test_models_the_person_has_are_added_in_place(tmp_path, library, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    header = embedded_model_path().read_bytes()[:1 << 20]  # a real GGUF header is all the check reads
    studio = tmp_path / "home" / ".lmstudio" / "models" / "bartowski" / "Some-Model-GGUF"
    studio.mkdir(parents=True)
    for name in ("Some-Model-Q4_K_M.gguf", "Big-00001-of-00002.gguf", "Big-00002-of-00002.gguf",
                 "mmproj-Some-Model-f16.gguf"):
        (studio / name).write_bytes(header)
    (studio / "broken.gguf").write_bytes(b"not a model")
    assert known_model_folders() == [("LM Studio", tmp_path / "home" / ".lmstudio" / "models")]
    added = library.add(known_model_folders()[0][1])
    assert sorted(m.name for m in added) == ["big", "some-model-q4_k_m"]
    assert all(m.origin == "LM Studio" and m.source == "added" for m in added)
    by_name = {m.name: m for m in added}
    assert by_name["big"].path == studio / "Big-00001-of-00002.gguf"  # llama.cpp opens the rest itself
    assert os.path.samefile(by_name["some-model-q4_k_m"].path, studio / "Some-Model-Q4_K_M.gguf")  # not copied
    assert library.add(studio) == added and len(library.installed()) == 2  # adding again changes nothing

    single = tmp_path / "elsewhere" / "tiny.gguf"  # a name the catalog already uses
    single.parent.mkdir()
    single.write_bytes(header)
    assert library.add(single)[0].name == "tiny-2"
    mlx = tmp_path / "my-mlx"
    mlx.mkdir()
    (mlx / "config.json").write_text("{}")
    (mlx / "model.safetensors").write_bytes(WEIGHTS)
    assert library.add(mlx, name="mine")[0].backend == "mlx"
    with pytest.raises(ModelError, match="not a GGUF model"):
        library.add(studio / "broken.gguf")
    with pytest.raises(NotFoundError, match="does not exist"):
        library.add(tmp_path / "nothing.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="No .gguf model"):
        library.add(tmp_path / "empty")
    index = json.loads(library.index_path.read_text())
    assert {item["name"] for item in index["added"]} == {"big", "some-model-q4_k_m", "tiny-2", "mine"}


def test_remove_deletes_downloads_but_only_forgets_added_models(hub, library, tmp_path):
    entry = library.catalog.get("tiny")
    model = library.download(entry, GGUF, options=FAST)
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(embedded_model_path().read_bytes()[:1 << 20])
    library.add(mine)
    report = library.remove("tiny")
    assert report.freed_bytes >= model.size_bytes and not model.path.exists() and not report.forgotten
    forgot = library.remove("mine")
    assert forgot.forgotten and mine.exists() and library.installed() == []
    with pytest.raises(NotFoundError, match="not downloaded"):
        library.remove("tiny")
    with pytest.raises(NotFoundError, match="No model called 'ghost'"):
        library.remove("ghost")


def test_remove_also_deletes_a_partial_download(hub, library):
    entry = library.catalog.get("tiny")
    hub.faults.drop_after = 1_000_000
    with pytest.raises(DownloadError):
        library.download(entry, GGUF, options=DownloadOptions(max_retries=0, retry_backoff_s=0,
                                                              reserve_bytes=1 << 20))
    assert library.partial(entry).done_bytes == 1_000_000
    report = library.remove("tiny")
    assert any(p.name.endswith(".part") for p in report.deleted) and library.partial(entry) is None


def test_downloads_go_to_the_folder_the_person_chose(hub, library, tmp_path):
    chosen = tmp_path / "big-disk" / "models"
    assert library.set_folder(chosen) == chosen
    model = library.download(library.catalog.get("tiny"), GGUF, options=FAST)
    assert model.path.is_relative_to(chosen)
    again = ModelLibrary(library.home.parent, library.catalog)  # a later process sees the choice
    assert again.folder == chosen and again.installed()[0].path == model.path
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        library.set_folder(tmp_path / "a-file")
    assert library.set_folder(None) == library.home
