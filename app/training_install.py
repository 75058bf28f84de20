"""Installing the optional training component from Settings ▸ Learned preferences.

Learning preferences overnight needs torch, transformers and peft (or MLX on a Mac), which a
plain install leaves out (about 1 GB for the CPU build of torch; the CUDA build pip picks by
default on Linux is several GB). A pip-installed MemDesk installs them into its own Python with
pip, on request, streaming pip's progress lines to the page. On Linux without an NVIDIA GPU,
torch comes from PyTorch's CPU index. A frozen desktop build runs the pip it carries into a
components folder next to the user's data (app/components.py), wheels only: there is no
compiler to build anything with.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import invalidate_caches, metadata
from importlib.util import find_spec
from pathlib import Path

from memdesk.app import components
from memdesk.engine.errors import MemDeskError

log = logging.getLogger(__name__)

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# The `train` extra of pyproject.toml, for when MemDesk's own metadata cannot be read.
TRAIN_PACKAGES = ("torch>=2.2", "transformers>=4.45", "peft>=0.13", "accelerate>=1", "gguf>=0.10")
MLX_PACKAGES = ("mlx>=0.20", "mlx-lm>=0.20")


class TrainingInstallError(MemDeskError):
    pass


@dataclass(frozen=True)
class InstallPlan:
    packages: tuple[str, ...]
    command: tuple[str, ...]
    size_note: str  # what the user is about to download, in words
    target: Path | None = None  # a frozen build's components folder (pip installs into its staging copy)


def _train_extra() -> tuple[str, ...]:
    try:
        requires = metadata.requires("memdesk") or []
    except metadata.PackageNotFoundError:
        return TRAIN_PACKAGES
    wanted = tuple(spec.split(";")[0].strip() for spec in requires
                   if "extra ==" in spec and spec.split("extra ==")[1].strip().strip("'\"") == "train")
    return wanted or TRAIN_PACKAGES


def _has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def plan(trainer: str, *, python: str | None = None, extra_args: tuple[str, ...] = ()) -> InstallPlan | str:
    """How to install the training component here, or (a str) why it cannot be done from the app."""
    packages = MLX_PACKAGES if trainer == "mlx" else _train_extra()
    target = None
    if components.frozen() and python is None:
        if find_spec("pip") is None:
            return ("This desktop build cannot add the training component to itself. Everything else works "
                    "without it, and adapters you already have keep working. To learn preferences, install "
                    "MemDesk with pip and its “train” extra.")
        target = components.training_folder()
        # Wheels only (no compiler here), into a staging folder swapped in whole when pip is done,
        # at the versions of what the bundle already holds (its modules are the ones imported).
        command = [*components.self_command(), components.PIP_COMMAND, "install", "--no-input", "--progress-bar", "off",
                   "--only-binary", ":all:", "--target", str(components.staging(target))]
        bundled = components.constraints_file()
        if bundled is not None:
            command += ["--constraint", str(bundled)]
    else:
        command = [python or sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                   "--progress-bar", "off"]
    size = "about 100 MB" if trainer == "mlx" else "about 1 GB"
    if trainer != "mlx" and sys.platform.startswith("linux") and not _has_nvidia_gpu():
        # Without a GPU the CUDA build of torch is several GB of libraries that would never load.
        command += ["--extra-index-url", CPU_TORCH_INDEX]
        size = "about 1 GB (torch for the CPU: this computer has no NVIDIA GPU)"
    return InstallPlan(tuple(packages), tuple(command) + tuple(extra_args) + tuple(packages), size, target)


def run(install: InstallPlan, on_line: Callable[[str], None], cancel: threading.Event | None = None,
        timeout_s: float = 3600.0) -> None:
    """Run pip, passing each line it prints to `on_line`; raises TrainingInstallError on failure."""
    env = dict(os.environ, PIP_NO_INPUT="1", PYTHONUNBUFFERED="1")
    if install.target is not None:
        shutil.rmtree(components.staging(install.target), ignore_errors=True)  # a try that was cut short
    try:
        proc = subprocess.Popen(install.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace", env=env, bufsize=1)
    except OSError as exc:
        raise TrainingInstallError(f"Could not start pip ({exc.strerror or exc}). Is this MemDesk installed with "
                                   "pip? Reinstall it, then try again.") from exc
    tail: list[str] = []
    stopper = threading.Timer(timeout_s, proc.kill)
    stopper.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            tail = (tail + [line])[-12:]
            on_line(line)
            if cancel is not None and cancel.is_set():
                _interrupt(proc)
                break
        code = proc.wait()
    finally:
        stopper.cancel()
    if install.target is not None:
        if code == 0 and not (cancel is not None and cancel.is_set()):
            try:
                components.finish(install.target)  # whole, by a rename, and on sys.path from now on
            except OSError as exc:
                shutil.rmtree(components.staging(install.target), ignore_errors=True)
                raise TrainingInstallError(f"The training component was downloaded but could not be put in "
                                           f"{install.target.parent} ({exc.strerror or exc}). Check that the "
                                           "folder is writable and has space, then install again.") from exc
        else:
            shutil.rmtree(components.staging(install.target), ignore_errors=True)
    invalidate_caches()  # so the nightly job finds what was just installed without a restart
    if cancel is not None and cancel.is_set():
        raise TrainingInstallError("The installation was stopped. Nothing needs cleaning up; install again "
                                   "when you like.")
    if code != 0:
        reason = next((line for line in reversed(tail) if line.startswith("ERROR")),
                      tail[-1] if tail else f"exit {code}")
        log.warning("training component install failed (%s): %s", code, "\n".join(tail))
        space = " Free some disk space first." if "No space left" in "\n".join(tail) else ""
        raise TrainingInstallError(f"The training component could not be installed: {reason}.{space} Check the "
                                   "internet connection and try again; the log has pip's full output.")


def _interrupt(proc: subprocess.Popen) -> None:
    """Stop pip as Ctrl+C would, so it rolls back a half-installed package; kill it if it lingers.
    (On Windows a console signal would reach MemDesk's own process group too: pip is killed.)"""
    if sys.platform == "win32":
        proc.kill()
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(15)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()


def describe(line: str) -> str:
    """pip's line, said for the page ("Downloading torch-2.5.1+cpu-….whl (175.8 MB)" -> "Downloading torch…")."""
    for verb in ("Collecting", "Downloading", "Installing collected packages", "Successfully installed",
                 "Building wheel", "Requirement already satisfied"):
        if line.lstrip().startswith(verb):
            return line.strip()[:140]
    return ""
