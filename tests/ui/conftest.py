"""Qt tests run offscreen (the `runner` and `settle` fixtures are in tests/conftest.py)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
