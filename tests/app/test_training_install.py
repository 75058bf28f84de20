"""Installing the training component from Settings ▸ Learned preferences: a real pip run,
offline, on a small wheel made here (installed into a temporary folder, never into the
environment running the tests)."""
from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from memdesk.app import training_install
from memdesk.app.gui_training import TrainingInstaller
from memdesk.app.training_install import InstallPlan, TrainingInstallError, describe, plan, run
from memdesk.ui.adapters import AdaptersView


def tiny_wheel(folder: Path, name: str = "memdesk_train_probe", version: str = "0.1", requires: str = "") -> Path:
    """A minimal valid wheel (PEP 427) holding one module."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    needs = f"Requires-Dist: {requires}\n" if requires else ""
    files = {f"{name}/__init__.py": f"TRAINED = True\nVERSION = {version!r}\n".encode(),
             f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{needs}".encode(),
             f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
                     f"{len(data)}\n" for path, data in files.items()) + f"{dist_info}/RECORD,,\n"
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as out:
        for path, data in files.items():
            out.writestr(path, data)
        out.writestr(f"{dist_info}/RECORD", record)
    return wheel


def offline_plan(tmp_path: Path, package: str = "memdesk_train_probe") -> InstallPlan:
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    command = (sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
               "--progress-bar", "off", "--no-index", "--find-links", str(wheels), "--target",
               str(tmp_path / "target"), package)
    return InstallPlan((package,), command, "a few bytes")


def test_linux_without_a_gpu_takes_torch_for_the_cpu(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(training_install, "_has_nvidia_gpu", lambda: False)
    install = plan("torch")
    assert isinstance(install, InstallPlan)
    assert training_install.CPU_TORCH_INDEX in install.command
    assert any(p.startswith("torch") for p in install.packages) and any(p.startswith("peft") for p in install.packages)
    monkeypatch.setattr(training_install, "_has_nvidia_gpu", lambda: True)
    assert training_install.CPU_TORCH_INDEX not in plan("torch").command
    assert plan("mlx").packages == training_install.MLX_PACKAGES


def test_pip_runs_and_its_steps_reach_the_page(tmp_path):
    lines = []
    run(offline_plan(tmp_path), lines.append)
    assert (tmp_path / "target" / "memdesk_train_probe" / "__init__.py").exists()
    steps = [describe(line) for line in lines if describe(line)]
    assert any(s.startswith("Successfully installed") for s in steps)


def test_a_package_pip_cannot_find_is_a_clear_error(tmp_path):
    with pytest.raises(TrainingInstallError, match="could not be installed: ERROR"):
        run(offline_plan(tmp_path, "memdesk_no_such_package"), lambda line: None)
    assert not (tmp_path / "target" / "memdesk_no_such_package").exists()


def test_the_page_installs_and_then_allows_training(qtbot, kw_mem, runner, settle, tmp_path):
    view = AdaptersView(kw_mem, runner, "base", "SmolLM2", missing=("torch", "peft"),
                        install_note="“Install training component” adds it.", installable=True)
    qtbot.addWidget(view)
    settle()
    assert not view.train_button.isEnabled() and not view.install_button.isHidden()
    installer = TrainingInstaller()
    install = offline_plan(tmp_path)
    view.installRequested.connect(lambda: installer.start(install))
    installer.step.connect(view.install_step)
    installer.finished.connect(view.install_finished)
    with qtbot.waitSignal(installer.finished, timeout=120000) as finished:
        view.install_button.click()
    assert finished.args == [""]
    assert view.train_button.isEnabled() and view.install_button.isHidden()
    assert "is installed" in view.message.text()


def test_the_page_shows_a_failed_install_and_lets_it_be_tried_again(qtbot, kw_mem, runner, settle, tmp_path):
    view = AdaptersView(kw_mem, runner, "base", "SmolLM2", missing=("torch",), installable=True)
    qtbot.addWidget(view)
    settle()
    installer = TrainingInstaller()
    install = offline_plan(tmp_path, "memdesk_no_such_package")
    view.installRequested.connect(lambda: installer.start(install))
    installer.finished.connect(view.install_finished)
    with qtbot.waitSignal(installer.finished, timeout=120000):
        view.install_button.click()
    assert "could not be installed" in view.message.text()
    assert view.install_button.isEnabled() and not view.train_button.isEnabled()
