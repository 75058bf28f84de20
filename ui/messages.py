"""Engine messages, said for someone using the desktop app.

The engine's errors say how to fix the problem, and for the command line that is a command
("`memdesk search` lists ids"). Shown in a window, that sends a desktop user to a terminal
for something the app itself does. `for_gui` swaps each such hint for where to do it in the
app; a hint with no GUI counterpart is dropped (a parenthesised command) rather than shown.
Every display of an engine message in ui/ and app/ goes through it.
"""
from __future__ import annotations

import re

_CMD = r"`memdesk [^`]*`"
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"Export what you can with `memdesk export`, then restore a\s+backup\.",
     "Export what you can (Settings ▸ Memories ▸ Export…), then restore a backup (Settings ▸ Privacy & key "
     "▸ Restore backup…)."),
    (r"`memdesk search` lists ids\.", "Search for it in the Memories window (Ctrl+K)."),
    (r"see `memdesk history [^`]*`\.", "see its History tab in the Memories window."),
    (r"`memdesk chat` without --session starts one\.", "start a new chat with Ctrl+N."),
    (r"\(made by `memdesk backup create`\)", "(made with Create backup… in Settings ▸ Privacy & key)"),
    (r"or use `memdesk ingest` for whole documents", "or put whole documents in a folder you watch "
                                                     "(Settings ▸ Watched folders)"),
    (r"Export one with `memdesk model export-mlx [^`]*`,? or pick (?:another model|the model folder again) "
     r"in settings\.", "Pick another model in Settings ▸ Model (a .gguf file needs no export)."),
    (r"Choose a \.gguf file, or export one with `memdesk model export-mlx[^`]*`\.",
     "Choose a .gguf file in Settings ▸ Model instead."),
    (r"Export one with `memdesk model export-mlx[^`]*`\.", "Choose a .gguf model file in Settings ▸ Model instead."),
    (r"export the chat model\s+with `memdesk model export-mlx[^`]*` first\.",
     "choose a .gguf chat model in Settings ▸ Model (learning preferences works from it)."),
    (r"`memdesk adapter list` shows them\.", "Settings ▸ Learned preferences lists them."),
    (r"`memdesk adapter dataset --rebuild` builds one\.", "Train now in Settings ▸ Learned preferences builds one."),
    (r"rebuild it with\s+`memdesk adapter dataset --rebuild`\.",
     "build it again with Train now in Settings ▸ Learned preferences."),
    (r",? as `memdesk adapter dataset` shows it\.", "."),
    (r"`memdesk model list` shows (?:them|every name)\.", "Settings ▸ Model shows the models you can use."),
    (r"\(`memdesk model list`\)", "(Settings ▸ Model)"),
    (r",? or give `memdesk chat` a smaller --n-ctx\.", ", or choose the compact memory layout in Settings ▸ Model."),
    # No counterpart in the app: the parenthesised command goes, the sentence stays whole.
    (rf"\s*\({_CMD}[^)]*\)", ""),
    (rf"\s*\((?:[^()`]*\s)?{_CMD}[^)]*\)", ""),
))


def for_gui(message: str) -> str:
    """`message` with its command-line advice replaced by the app's way to do it."""
    if "`memdesk " not in message:
        return message
    for pattern, replacement in _RULES:
        message = pattern.sub(replacement, message)
    return message
