"""How Settings ▸ Watched folders shows each folder: its path and what the watcher does with it.

The watcher (engine.ingestion.watch) reports a `FolderState` per folder as it changes; the app
relays the list to the open dialog, which updates its rows and its summary line in place.
A folder added in the dialog but not applied yet has no state: it says so.
"""
from __future__ import annotations

import os

from PySide6.QtWidgets import QListWidgetItem, QStyle

from memdesk.engine.ingestion.watch import FolderState

_ICONS = {"watching": QStyle.StandardPixmap.SP_DirIcon,
          "scanning": QStyle.StandardPixmap.SP_BrowserReload,
          "starting": QStyle.StandardPixmap.SP_BrowserReload,
          "paused": QStyle.StandardPixmap.SP_MediaPause,
          "missing": QStyle.StandardPixmap.SP_MessageBoxWarning,
          "error": QStyle.StandardPixmap.SP_MessageBoxCritical}


def summary(states: list[FolderState]) -> str:
    """One line for the top of the page: what is being watched, scanned, missing or failing."""
    if not states:
        return "Not watching any folder: add one below, then Apply."
    by_state: dict[str, list[FolderState]] = {}
    for state in states:
        by_state.setdefault(state.state, []).append(state)
    parts = []
    if watching := by_state.get("watching"):
        parts.append(f"Watching {_folders(len(watching))}")
    busy = by_state.get("scanning", []) + by_state.get("starting", [])
    if busy:
        done = sum(s.done for s in busy)
        total = sum(s.total for s in busy)
        parts.append(f"scanning {_folders(len(busy))}" + (f" ({done} of {total} files)" if total else "…"))
    if paused := by_state.get("paused"):
        parts.append(f"{_folders(len(paused))} paused (resume from the tray menu)")
    if missing := by_state.get("missing"):
        parts.append(f"{_folders(len(missing))} not found")
    if errors := by_state.get("error"):
        parts.append(f"{_folders(len(errors))} failing")
    text = ", ".join(parts)
    return text[:1].upper() + text[1:] + "."


def decorate(item: QListWidgetItem, path: str, state: FolderState | None, style: QStyle) -> None:
    """The row of one folder: its path, then its state in words, with an icon to match."""
    if state is None:
        if os.path.isdir(path):
            item.setText(path)
            item.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_DirIcon))
            item.setToolTip(f"{path}\nWatched once you press Apply or OK.")
        else:  # kept so the user can see it and decide
            item.setText(f"{path}  (missing)")
            item.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
            item.setToolTip("This folder no longer exists. Reconnect the drive, or Remove it from the list.")
        return
    item.setText(f"{path}  —  {state.describe()}")
    item.setIcon(style.standardIcon(_ICONS.get(state.state, QStyle.StandardPixmap.SP_DirIcon)))
    tips = {"missing": "MemDesk cannot find this folder (deleted, renamed, or a drive that is not connected). "
                       "It is watched again by itself as soon as it is back; or Remove it from the list.",
            "error": f"{state.error}\nMemDesk tries again when the folder changes, or when you resume "
                     "ingestion from the tray menu."}
    item.setToolTip(f"{path}\n{tips.get(state.state, state.describe())}")


def _folders(n: int) -> str:
    return f"{n} folder" + ("" if n == 1 else "s")
