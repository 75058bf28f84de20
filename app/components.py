"""Optional components a desktop build installs next to itself: today, the training stack.

A frozen build (PyInstaller) cannot pip-install into itself: its Python is inside the bundle,
read-only in an AppImage or a signed .app. So it runs the pip it carries (`memdesk __pip__`,
the same executable) with `--target` into a folder of the user's data directory, and puts that
folder on `sys.path` at start. Modules in the bundle still win over the folder (PyInstaller's
importer comes first), so the packages both hold must be the same versions: the build records
what it bundled (`bundled-constraints.txt`) and pip resolves against it.

The folder is named by MemDesk's version and Python's: an update that bundles other versions
never loads a component resolved for the old ones; it asks to install again.
"""
from __future__ import annotations

import os
import shutil
import sys
from importlib import invalidate_caches
from pathlib import Path

COMPONENTS_ENV = "MEMDESK_COMPONENTS_DIR"  # tests, and people who keep them elsewhere
PIP_COMMAND = "__pip__"  # `memdesk __pip__ install ...`: the pip a frozen build carries
CONSTRAINTS = "bundled-constraints.txt"  # written by packaging/memdesk.spec into the bundle's root


def frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def self_command() -> list[str]:
    """How to run this MemDesk again: the bundle's executable, or this Python with the package."""
    return [sys.executable] if getattr(sys, "frozen", False) else [sys.executable, "-m", "memdesk"]


def root() -> Path:
    if os.environ.get(COMPONENTS_ENV):
        return Path(os.environ[COMPONENTS_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("MemDesk", appauthor=False)) / "components"


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("memdesk")
    except metadata.PackageNotFoundError:
        return "dev"


def training_folder() -> Path:
    return root() / f"train-{_version()}-py{sys.version_info.major}{sys.version_info.minor}"


def constraints_file() -> Path | None:
    """The versions this build bundled (None outside a frozen build, or a build without the file)."""
    base = getattr(sys, "_MEIPASS", None)
    path = Path(base) / CONSTRAINTS if base else None
    return path if path is not None and path.is_file() else None


def activate(folder: Path | None = None) -> bool:
    """Put an installed component's folder on sys.path (after the bundle: the bundle's modules win).
    Only a frozen build, or one told where its components are, looks: a pip install has its own."""
    if folder is None:
        if not (frozen() or os.environ.get(COMPONENTS_ENV)):
            return False
        folder = training_folder()
    if not folder.is_dir():
        return False
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
        invalidate_caches()
    return True


def staging(folder: Path) -> Path:
    """Where pip installs first: the component appears whole, by one rename, or not at all."""
    return folder.with_name(folder.name + ".partial")


def finish(folder: Path) -> None:
    """pip succeeded into staging(folder): swap it in, drop what it replaces and older versions'."""
    ready, old = staging(folder), folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    ready.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    for other in folder.parent.glob("train-*"):
        if other != folder and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    activate(folder)


def run_pip(args: list[str]) -> int:
    """`memdesk __pip__ ...`: the pip this build carries, in this process."""
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    try:
        from pip._internal.cli.main import main as pip_main
    except ImportError:
        print("memdesk: error: this build carries no pip, so it cannot install components. Install "
              "MemDesk with pip instead, with its “train” extra.", file=sys.stderr)
        return 2
    return int(pip_main(args) or 0)
