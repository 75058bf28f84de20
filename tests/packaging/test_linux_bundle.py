"""The Linux packages as a user gets them (installers/linux/build.sh).

The built AppImage is run under Xvfb with `gui --smoke` where no Python is on PATH and no
virtual environment is visible, with the same arguments as `memdesk`. Building takes about
15 minutes (llama.cpp compiles for a portable CPU), so the suite does not build: these run
on what build.sh left in dist/ and are skipped, saying so, when it has not been run. The
desktop entries and build scripts are checked always.
"""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
APPIMAGE = ROOT / "dist" / f"MemDesk-{VERSION}-x86_64.AppImage"
DEB = ROOT / "dist" / f"memdesk_{VERSION}_amd64.deb"


def desktop_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def test_the_menu_entry_is_a_valid_desktop_entry():
    entry = desktop_entry(ROOT / "installers" / "linux" / "memdesk.desktop")
    assert entry["Type"] == "Application" and entry["Icon"] == "memdesk" and entry["Exec"].split()[0] == "memdesk"
    assert entry["Categories"].endswith(";") and entry["Terminal"] == "false"
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(ROOT / "installers" / "linux" / "memdesk.desktop")],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_build_scripts_parse():
    for script in ("installers/linux/build.sh", "installers/macos/build.sh", "installers/linux/AppRun"):
        if (ROOT / script).exists():
            subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


@pytest.mark.parametrize("args", [[], ["--data-dir", "/tmp/a b", "gui"], ["search", "gui time"]])
@pytest.mark.parametrize("path", ["/usr/bin:/bin", ""])
def test_the_appimage_entry_passes_the_command_line_through(tmp_path, args, path):
    """AppRun reads ahead for the window when it can (files it cannot read are skipped) and always
    hands the arguments over unchanged."""
    app = tmp_path / "usr" / "lib" / "memdesk"
    (app / "_internal").mkdir(parents=True)
    (app / "_internal" / "base_library.zip").write_bytes(b"zip")
    (app / "memdesk").write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$APPDIR/args"\n')
    (app / "memdesk").chmod(0o755)
    run = subprocess.run(["/bin/sh", str(ROOT / "installers" / "linux" / "AppRun"), *args], capture_output=True,
                         text=True, timeout=30, env={"APPDIR": str(tmp_path), "PATH": path})
    assert run.returncode == 0 and run.stderr == ""
    assert (tmp_path / "args").read_text().splitlines() == args


def _bare_env(tmp_path: Path) -> dict[str, str]:
    """No Python on PATH, no venv, a fresh home: what a user who downloaded the file has."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"HOME": str(tmp_path / "home"), "PATH": str(bin_dir), "LANG": "C.UTF-8",
           "XDG_RUNTIME_DIR": str(tmp_path / "run"), "TMPDIR": str(tmp_path)}
    (tmp_path / "run").mkdir(mode=0o700)
    return env


def _on_display(command: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    xvfb = shutil.which("Xvfb")
    if xvfb:  # a real X server, so the xcb plugin and its system libraries are what is tested
        display = f":{90 + os.getpid() % 100}"
        server = subprocess.Popen([xvfb, display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            env = env | {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
            return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        finally:
            server.terminate()
            server.wait(10)
    return subprocess.run(command, env=env | {"QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(not APPIMAGE.exists(), reason=f"{APPIMAGE.name} not built: run bash installers/linux/build.sh")
def test_the_appimage_runs_every_window_without_python(tmp_path):
    env = _bare_env(tmp_path)
    assert shutil.which("python3", path=env["PATH"]) is None
    fuse = Path("/dev/fuse").exists() and shutil.which("fusermount3")
    command = [str(APPIMAGE)] + ([] if fuse else ["--appimage-extract-and-run"])
    result = _on_display(command + ["--data-dir", str(tmp_path / "data"), "gui", "--smoke"], env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all windows OK" in result.stdout
    version = subprocess.run(command + ["--version"], env=env | {"QT_QPA_PLATFORM": "offscreen"},
                             capture_output=True, text=True, timeout=300)
    assert VERSION in version.stdout + version.stderr


@pytest.mark.skipif(not DEB.exists() or not shutil.which("dpkg-deb"),
                    reason=f"{DEB.name} not built: run bash installers/linux/build.sh")
def test_the_deb_installs_a_launcher_a_menu_entry_and_icons(tmp_path):
    subprocess.run(["dpkg-deb", "-x", str(DEB), str(tmp_path)], check=True)
    control = subprocess.run(["dpkg-deb", "-f", str(DEB)], capture_output=True, text=True, check=True).stdout
    assert f"Version: {VERSION}" in control and "libxcb-cursor0" in control
    assert os.readlink(tmp_path / "usr/bin/memdesk") == "/opt/memdesk/memdesk"
    assert (tmp_path / "opt/memdesk/memdesk").stat().st_mode & 0o111
    assert desktop_entry(tmp_path / "usr/share/applications/memdesk.desktop")["Exec"] == "memdesk"
    for size in (16, 32, 48, 128, 256, 512):
        assert (tmp_path / f"usr/share/icons/hicolor/{size}x{size}/apps/memdesk.png").exists()
    assert not list((tmp_path / "opt/memdesk").rglob("torch"))  # the bundle carries no torch
    env = _bare_env(tmp_path)
    result = subprocess.run([str(tmp_path / "opt/memdesk/memdesk"), "--version"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and VERSION in result.stdout + result.stderr
    # What the Learned preferences page needs to install the training component (app/components.py):
    # the bundle runs its own pip, against the versions it bundled.
    pip = subprocess.run([str(tmp_path / "opt/memdesk/memdesk"), "__pip__", "--version"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert pip.returncode == 0 and pip.stdout.startswith("pip "), pip.stdout + pip.stderr
    pins = (tmp_path / "opt/memdesk/_internal/bundled-constraints.txt").read_text().splitlines()
    assert any(line.startswith("numpy==") for line in pins) and not any(line.startswith("pip==") for line in pins)
