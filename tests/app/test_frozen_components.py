"""A desktop build installs the training component next to itself (app/components.py): its own pip
(`memdesk __pip__`), wheels only, pinned to what the bundle holds, into a folder that appears
whole or not at all. pip here is real and fetches from a real HTTP server on loopback; the
"frozen build" is this Python told it is one (`components.frozen`, `sys._MEIPASS`)."""
from __future__ import annotations

import importlib
import os
import sys
import threading
from dataclasses import replace
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from memdesk.app import components, training_install
from memdesk.app.training_install import InstallPlan, TrainingInstallError, run

from .test_training_install import tiny_wheel

PROBE, DEP = "memdesk_train_probe", "memdesk_train_dep"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def index(tmp_path):
    """A PEP 503 index: the probe needs the dependency, which has a newer version than the bundle's."""
    root = tmp_path / "index"
    tiny_wheel(root / "simple" / PROBE.replace("_", "-"), PROBE, "0.1", requires=DEP)
    for version in ("0.1", "0.2"):
        tiny_wheel(root / "simple" / DEP.replace("_", "-"), DEP, version)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/simple/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def frozen_build(tmp_path, monkeypatch):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / components.CONSTRAINTS).write_text(f"{DEP}==0.1\n")  # what "the bundle" holds
    monkeypatch.setattr(components, "frozen", lambda: True)
    monkeypatch.setattr(sys, "_MEIPASS", str(bundle), raising=False)
    monkeypatch.setenv(components.COMPONENTS_ENV, str(tmp_path / "components"))
    for name in [n for n in os.environ if n.startswith("PIP_")]:  # this machine's own pip settings
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    path = list(sys.path)
    yield tmp_path / "components"
    sys.path[:] = path
    for name in (PROBE, DEP):
        sys.modules.pop(name, None)


def probe_plan(index: str, package: str = PROBE) -> InstallPlan:
    install = training_install.plan("torch", extra_args=("--index-url", index))
    assert isinstance(install, InstallPlan)
    return replace(install, packages=(package,), command=install.command[:-len(install.packages)] + (package,))


def test_a_frozen_build_plans_its_own_pip_into_a_staging_folder(frozen_build, index):
    install = training_install.plan("torch")
    assert isinstance(install, InstallPlan)
    command = list(install.command)
    assert command[:len(components.self_command()) + 2] == [*components.self_command(), components.PIP_COMMAND,
                                                             "install"]
    assert command[command.index("--target") + 1] == str(components.staging(install.target))
    assert command[command.index("--constraint") + 1].endswith(components.CONSTRAINTS)
    assert command[command.index("--only-binary") + 1] == ":all:"
    assert install.target == components.training_folder() and install.target.parent == frozen_build


def test_the_component_installs_whole_pinned_to_the_bundle_and_imports(frozen_build, index):
    older = frozen_build / "train-0.0.1-py311"  # left by an earlier MemDesk
    older.mkdir(parents=True)
    lines: list[str] = []
    install = probe_plan(index)
    run(install, lines.append)
    assert any(line.startswith("Successfully installed") for line in lines)
    folder = install.target
    assert folder.is_dir() and not components.staging(folder).exists() and not older.exists()
    assert str(folder) in sys.path
    probe, dep = importlib.import_module(PROBE), importlib.import_module(DEP)
    assert probe.TRAINED and probe.__file__.startswith(str(folder))
    assert dep.VERSION == "0.1"  # the bundle's version, not the index's newest


def test_a_failed_install_leaves_the_installed_component_as_it_was(frozen_build, index):
    install = probe_plan(index)
    run(install, lambda line: None)
    with pytest.raises(TrainingInstallError, match="could not be installed"):
        run(probe_plan(index, "memdesk_no_such_package"), lambda line: None)
    assert (install.target / PROBE / "__init__.py").exists()
    assert not components.staging(install.target).exists()


def test_what_a_killed_install_left_is_never_loaded_and_is_cleared(frozen_build, index):
    install = probe_plan(index)
    half = components.staging(install.target)
    (half / PROBE).mkdir(parents=True)  # pip killed midway: a staging folder, no component
    assert not components.activate()
    run(install, lambda line: None)
    assert not half.exists() and (install.target / f"{PROBE}-0.1.dist-info").is_dir()


def test_only_a_frozen_build_or_a_named_folder_loads_components(tmp_path, monkeypatch):
    folder = tmp_path / "c" / components.training_folder().name
    folder.mkdir(parents=True)
    monkeypatch.delenv(components.COMPONENTS_ENV, raising=False)
    assert not components.frozen()
    assert not components.activate()  # a pip install has its own packages: it never looks
    monkeypatch.setenv(components.COMPONENTS_ENV, str(tmp_path / "c"))
    path = list(sys.path)
    try:
        assert components.activate() and sys.path[-1] == str(folder)
    finally:
        sys.path[:] = path


def test_a_build_without_pip_says_so(frozen_build, monkeypatch):
    monkeypatch.setattr(training_install, "find_spec", lambda name: None)
    reason = training_install.plan("torch")
    assert isinstance(reason, str) and "pip" in reason and "`memdesk" not in reason


def test_memdesk_adapter_install_does_what_the_page_does(frozen_build, index, monkeypatch, capsys):
    from importlib.util import find_spec

    from memdesk.app.cli import main
    from memdesk.engine.parametric import nightly

    monkeypatch.setattr(training_install, "_train_extra", lambda: (PROBE,))
    monkeypatch.setattr(training_install, "_has_nvidia_gpu", lambda: True)  # no PyTorch index to reach
    monkeypatch.setattr(nightly, "missing_training_packages", lambda trainer: [] if find_spec(PROBE) else [PROBE])
    monkeypatch.setenv("PIP_INDEX_URL", index)
    assert main(["adapter", "install"]) == 0
    out = capsys.readouterr()
    assert "Successfully installed" in out.err and out.out.strip() == "The training component is installed."
    assert (components.training_folder() / PROBE).is_dir()
    assert main(["adapter", "install"]) == 0  # nothing left to do
    assert "Successfully" not in capsys.readouterr().err


def test_a_component_that_cannot_be_put_in_place_is_a_clear_error(frozen_build, index, monkeypatch):
    def no_room(folder):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(components, "finish", no_room)
    install = probe_plan(index)
    with pytest.raises(TrainingInstallError, match="could not be put in .*No space left on device"):
        run(install, lambda line: None)
    assert not install.target.exists() and not components.staging(install.target).exists()
