"""Loading the chat model with its active adapter (the parametric memory in use)."""
from __future__ import annotations

from pathlib import Path

from memdesk.engine.api import Memory
from memdesk.engine.llm.base import ChatModel, fingerprint_file, fingerprint_folder
from memdesk.engine.llm.registry import default_model_path, load_model, pick_backend
from memdesk.engine.parametric.registry import Adapter


def base_fingerprint(path: Path, backend: str = "auto") -> tuple[str, str]:
    """(backend, fingerprint) of a base model, as the adapter registry keys it."""
    chosen = pick_backend(path, backend)
    return chosen, fingerprint_folder(path) if path.is_dir() else fingerprint_file(path)


def load_chat_model(mem: Memory, path: Path | None = None, *, backend: str = "auto", n_ctx: int = 4096,
                    use_adapter: bool = True) -> tuple[ChatModel, Adapter | None]:
    """The model, with the adapter that is active for it (if any and if wanted)."""
    path = Path(path) if path else default_model_path()
    if not use_adapter or backend == "fake" or not path.exists():
        return load_model(path, backend=backend, n_ctx=n_ctx), None  # load_model explains a missing file
    chosen, fingerprint = base_fingerprint(path, backend)
    registry = mem.adapters
    active = registry.active(fingerprint)
    if active is None:
        return load_model(path, backend=chosen, n_ctx=n_ctx), None
    kind = "gguf" if chosen == "llama.cpp" else "native"
    # The weights are decrypted to a private temporary file only for the load: both backends
    # read the adapter into memory while the model is built.
    with registry.materialise(active.id, kind) as adapter_path:
        model = load_model(path, backend=chosen, n_ctx=n_ctx, lora_path=adapter_path)
    return model, active
