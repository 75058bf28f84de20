"""The layout rules from ARCHITECTURE.md: one-way imports, one import root, SQL only in the
vault package, a UI without a database handle, and small modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 600

ENGINE_FORBIDDEN = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "memdesk.ui", "memdesk.app")
UI_FORBIDDEN = ("apsw", "sqlite3", "sqlite_vec", "memdesk.engine.vault", "memdesk.engine.llm")
TOP_FOLDERS = ("engine", "app", "ui", "resources")  # installed as memdesk.<name> (pyproject.toml)
BARE_ROOTS = TOP_FOLDERS  # importing these by their folder name would load a second copy


def _python_files(folder: str) -> list[Path]:
    base = ROOT / folder
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def _module_package(path: Path, root: Path) -> list[str]:
    """The dotted package a file belongs to, for resolving relative imports."""
    parts = list(path.relative_to(root).with_suffix("").parts)[:-1]
    return ["memdesk", *parts] if parts and parts[0] in TOP_FOLDERS else parts


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module a file imports anywhere (top level, functions, classes, try blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _module_package(path, root)
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from memdesk.engine import vault` imports memdesk.engine.vault.
            found.extend((node.lineno, f"{module}.{alias.name}".lstrip("."))
                         for alias in node.names if alias.name != "*")
    # __import__("x") / importlib.import_module("x") with a literal name.
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("__import__", "import_module"):
                found.append((node.lineno, node.args[0].value))
    return found


def _matches(module: str, forbidden: tuple[str, ...]) -> str | None:
    for name in forbidden:
        if module == name or module.startswith(name + "."):
            return name
    return None


def _violations(files: list[Path], forbidden: tuple[str, ...], root: Path = ROOT) -> list[str]:
    out = []
    for path in files:
        for lineno, module in imported_modules(path, root):
            if _matches(module, forbidden):
                out.append(f"{path.relative_to(root)}:{lineno} imports {module}")
    return out


def test_checker_sees_nested_relative_and_dynamic_imports(tmp_path):
    """The scanner itself must catch imports hidden in functions, try blocks and relative forms."""
    fake_root = tmp_path
    pkg = fake_root / "engine" / "sub"
    pkg.mkdir(parents=True)
    (fake_root / "engine" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    bad = pkg / "bad.py"
    bad.write_text(
        "import os\n"
        "def f():\n"
        "    from PySide6.QtCore import QObject\n"
        "class C:\n"
        "    def g(self):\n"
        "        try:\n"
        "            import memdesk.ui.widgets\n"
        "        except ImportError:\n"
        "            pass\n"
        "from ... import app\n"
        "import importlib\n"
        "importlib.import_module('PyQt6.QtGui')\n")
    found = _violations([bad], ENGINE_FORBIDDEN, fake_root)
    text = "\n".join(found)
    assert ":3 imports PySide6.QtCore" in text
    assert ":7 imports memdesk.ui.widgets" in text
    assert ":10 imports memdesk.app" in text
    assert ":12 imports PyQt6.QtGui" in text
    assert len(found) == 5  # PySide6.QtCore (+ .QObject), memdesk.ui.widgets, memdesk.app, PyQt6.QtGui


def test_engine_has_modules():
    files = _python_files("engine")
    assert any(p.name == "api.py" for p in files), "engine/api.py is missing"


def test_engine_never_imports_qt_ui_or_app():
    violations = _violations(_python_files("engine"), ENGINE_FORBIDDEN)
    assert not violations, "engine/ must stay headless:\n" + "\n".join(violations)


def test_ui_never_touches_sqlite_or_models():
    files = [p for p in _python_files("ui") if p.read_text(encoding="utf-8").strip()]
    if not files:
        pytest.skip("ui/ has no modules yet")
    violations = _violations(files, UI_FORBIDDEN)
    assert not violations, "ui/ may use the Memory facade (engine.api) and plain types only:\n" + "\n".join(violations)


def _attribute_uses(path: Path, name: str) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == name]


def test_ui_never_holds_the_database_handle():
    """Sessions, feedback and adapters come from the Memory facade; a widget cannot run SQL."""
    found = [f"{path.relative_to(ROOT)}:{line}" for path in _python_files("ui") for line in _attribute_uses(path, "db")]
    assert not found, "ui/ reads `.db`; use Memory's sessions, feedback or adapters:\n" + "\n".join(found)


SQL_CALLS = ("execute", "executemany", "cursor")


def test_sql_runs_only_in_the_vault_package():
    """Every SQL statement of the engine is in engine/vault/ (MemVault), and app/ and ui/ run none."""
    vault = ROOT / "engine" / "vault"
    files = [p for folder in ("engine", "app", "ui") for p in _python_files(folder) if vault not in p.parents]
    found = [f"{path.relative_to(ROOT)}:{line}" for path in files for name in SQL_CALLS
             for line in _attribute_uses(path, name)]
    assert not found, "SQL outside engine/vault/ (move it into a vault module):\n" + "\n".join(found)


def test_the_sql_check_sees_a_call_anywhere(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f(db):\n    with db.read() as conn:\n        return [r for r in conn.execute('SELECT 1')]\n")
    assert _attribute_uses(sneaky, "execute") == [3]


@pytest.mark.parametrize("folder", ["engine", "app", "ui", "tests", "bench", "packaging", "installers", "memdesk"])
def test_everything_imports_through_the_memdesk_root(folder):
    """`import engine` would load a second copy of every module beside memdesk.engine's."""
    violations = _violations(_python_files(folder), BARE_ROOTS)
    assert not violations, "import these as memdesk.<name>:\n" + "\n".join(violations)


def test_pyproject_installs_every_package_under_the_root():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapping = config["package-dir"]
    assert {mapping[f"memdesk.{top}"] for top in TOP_FOLDERS} == set(TOP_FOLDERS)
    in_tree = {"memdesk"} | {"memdesk." + ".".join(init.parent.relative_to(ROOT).parts)
                             for top in TOP_FOLDERS for init in (ROOT / top).rglob("__init__.py")
                             if "__pycache__" not in init.parts}
    assert set(config["packages"]) == in_tree


@pytest.mark.parametrize("folder", ["engine", "app", "ui", "bench"])
def test_modules_are_small(folder):
    too_long = []
    for path in _python_files(folder):
        with path.open(encoding="utf-8") as fh:
            lines = sum(1 for _ in fh)
        if lines > MAX_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, f"modules over {MAX_LINES} lines; split them:\n" + "\n".join(too_long)
