"""Helpers every benchmark shares: percentiles and writing the JSON report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: every figure is one that was measured)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def git_commit() -> str:
    """The commit the benchmark ran on, with "+dirty" when the tree had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


# Read when the benchmark starts: the code it runs is the code of that moment, even if the
# tree moves on while a long run goes (the report used to name the commit at its end).
STARTED_AT_COMMIT = git_commit()


def write_report(report: dict, out: Path, module: str, argv: list[str] | None, show: dict | None = None) -> None:
    """Record the exact command and machine with the figures, write them, and print them."""
    report["command"] = f"python -m {module} " + " ".join(argv if argv is not None else sys.argv[1:])
    report["git_commit"] = STARTED_AT_COMMIT
    report["cpus"] = os.cpu_count()
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report if show is None else show, indent=2))
