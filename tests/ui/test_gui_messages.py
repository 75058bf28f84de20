"""Issue 12: where the GUI told a GUI user to run a CLI command ("add one with `memdesk add`",
"`memdesk search` lists ids", "Export what you can with `memdesk export`"), it now says what to
do in the app instead."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from memdesk.ui.messages import for_gui

ROOT = Path(__file__).resolve().parents[2]
# What a person sees in a terminal, not in a window; and the table of hints itself.
TERMINAL = {"cli.py", "__main__.py", "gui_smoke.py", "messages.py", "system_libraries.py"}  # stderr, before any window


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _text(node: ast.AST) -> str:
    """A string expression's text, with "X" for what is filled in at run time."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "X" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def engine_messages() -> list[str]:
    """Every message an engine error is made with."""
    found = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name.endswith("Error") or name in ("Cancelled", "Preempted"):
                    text = _text(node.args[0])
                    if "`memdesk " in text:
                        found.append(f"{path.relative_to(ROOT)}: {text}")
    return found


def test_every_engine_hint_to_run_memdesk_is_said_for_the_gui():
    messages = engine_messages()
    assert len(messages) >= 10  # the scan finds them (sessions, vault, backup, text, models, adapters...)
    left = [m for m in messages if "`memdesk" in for_gui(m) or "--" in for_gui(m).split(": ", 1)[1]]
    assert left == []


@pytest.mark.parametrize("message, expected", [
    ("No memory with id 'abcd1234'. `memdesk search` lists ids.",
     "No memory with id 'abcd1234'. Search for it in the Memories window (Ctrl+K)."),
    ("/v/vault.db is damaged (x). Export what you can with `memdesk export`, then restore a backup.",
     "/v/vault.db is damaged (x). Export what you can (Settings ▸ Memories ▸ Export…), then restore a backup "
     "(Settings ▸ Privacy & key ▸ Restore backup…)."),
    ("The note is 2.0 MB; one memory holds at most 256 KB. Split it into smaller notes, or use `memdesk ingest` "
     "for whole documents.",
     "The note is 2.0 MB; one memory holds at most 256 KB. Split it into smaller notes, or put whole documents "
     "in a folder you watch (Settings ▸ Watched folders)."),
    ("/x is not a MemDesk backup (made by `memdesk backup create`).",
     "/x is not a MemDesk backup (made with Create backup… in Settings ▸ Privacy & key)."),
    ("Not enough free disk. Free some space, or choose another models folder (`memdesk model folder PATH`), "
     "then try again.", "Not enough free disk. Free some space, or choose another models folder, then try again."),
    ("A message with no command in it.", "A message with no command in it."),
])
def test_hints_become_what_to_do_in_the_app(message, expected):
    assert for_gui(message) == expected


def test_no_window_tells_a_person_to_run_a_command():
    offenders = []
    for folder in ("ui", "app"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if path.name in TERMINAL or path.name.startswith("cli"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            skip = _docstrings(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                        and "`memdesk " in node.value:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert offenders == []


def test_the_browser_says_what_to_do_in_the_app(qtbot, kw_mem, runner, settle):
    from memdesk.ui.browser import BrowserWindow

    browser = BrowserWindow(kw_mem, runner)
    qtbot.addWidget(browser)
    settle()
    assert "memdesk" not in browser.empty.text() and "Quick capture" in browser.empty.text()
    browser.show_memory("0000ffff")  # a memory purged since it was linked
    settle()
    assert browser.status_line.text().endswith("Search for it in the Memories window (Ctrl+K).")
