"""`memdesk gui --smoke`: the composed desktop app, every window, on the real model, in a new process."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("PySide6")


@pytest.mark.slow
def test_every_window_opens_and_works_on_the_real_model(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)}
    env.pop("MEMDESK_PASSPHRASE", None)  # the smoke run makes its own temporary vault
    done = subprocess.run([sys.executable, "-m", "memdesk", "gui", "--smoke"], env=env, capture_output=True,
                          text=True, timeout=540, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for window in ("chat", "watched folder", "browser", "conflicts", "timeline", "capture", "settings"):
        assert f"ok: {window}" in out, out[-4000:]
    assert "all windows OK" in out
    assert not any(p.name.startswith("memdesk-smoke-") for p in tmp_path.iterdir())  # cleaned up
