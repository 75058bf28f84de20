"""MemDesk's one import root: memdesk.engine, memdesk.app, memdesk.ui and memdesk.resources.

The four packages live at the top of the repository (ARCHITECTURE.md) and are installed
under this name by setuptools' package-dir (pyproject.toml). Run from a checkout, where they
are not inside this folder, the repository's top level is part of this package's path, so
`memdesk.engine` is the same module whether installed, editable, frozen or under pytest.
"""
from pathlib import Path as _Path

_HERE = _Path(__file__).resolve().parent
if not (_HERE / "engine").is_dir() and (_HERE.parent / "engine" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))  # noqa: F821 - set by the import system for a package
