"""Shared fixtures. Tests never touch the user's real data folder or a model hub."""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from memdesk.engine.api import Memory  # noqa: E402
from memdesk.engine.search.embed import Embedder  # noqa: E402
from memdesk.engine.vault.keys import KdfParams  # noqa: E402

# Argon2id at full cost takes ~0.3 s per open; tests open vaults hundreds of times.
FAST_KDF = KdfParams(time_cost=1, memory_kib=8 * 1024, parallelism=1)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMDESK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEMDESK_PASSPHRASE", PASSPHRASE)
    # Relative dates follow the user's zone (engine.search.timeparse.local_zone): one zone for every
    # test, whatever the machine's; tests of other zones set TZ themselves.
    monkeypatch.setenv("TZ", "UTC")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2 from its PyPI package, loaded once per test run."""
    model = Embedder()
    model.encode(["warm up"])
    return model


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def mem(data_dir, embedder):
    with Memory.open(data_dir, embedder=embedder, kdf=FAST_KDF) as memory:
        yield memory


@pytest.fixture
def kw_mem(data_dir):
    """A keyword-only vault (no embedder): fast, for logic that does not need vectors."""
    with Memory.open(data_dir, embedder=False, kdf=FAST_KDF) as memory:
        yield memory


@pytest.fixture(scope="session")
def llama_model():
    """The embedded SmolLM2 GGUF on llama.cpp, loaded once per run (context 2048)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")
    from memdesk.engine.llm.registry import load_model

    model = load_model(n_ctx=2048)
    yield model
    model.close()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server on the embedded GGUF (context 2048), on a free
    loopback port, started for one test module and stopped after it (tests/llm_server.py)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is part of the install; this guards partial set-ups")
    from memdesk.engine.llm.registry import embedded_model_path
    from tests.llm_server import llama_cpp_server

    with llama_cpp_server(embedded_model_path(), tmp_path_factory.mktemp("llama-server") / "server.log") as server:
        yield server


@pytest.fixture(scope="session")
def embedded_hf(tmp_path_factory):
    """The embedded GGUF exported once per session as an HF/MLX folder (about 30 s): the MLX
    backend, both LoRA trainers and the gate all read it. Tests must not write into it."""
    from memdesk.engine.llm.export import export_gguf_to_hf
    from memdesk.engine.llm.registry import embedded_model_path

    return export_gguf_to_hf(embedded_model_path(), tmp_path_factory.mktemp("embedded-hf") / "smollm2")


@pytest.fixture
def runner(qtbot):
    """A TaskRunner for Qt tests (tests/ui, tests/app), drained before the vault closes."""
    from memdesk.ui.tasks import TaskRunner

    tasks = TaskRunner()
    yield tasks
    qtbot.waitUntil(lambda: tasks.pending == 0, timeout=30000)
    tasks.shutdown()


@pytest.fixture
def settle(qtbot, runner):
    """Wait until every background task has finished and delivered its result."""
    def wait(timeout: int = 30000) -> None:
        qtbot.waitUntil(lambda: runner.pending == 0, timeout=timeout)
    return wait
