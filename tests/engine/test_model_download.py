"""Downloads against a real HTTP server on loopback that serves the embedded GGUF (a real
98 MB model) under the Hugging Face URL layout (HF_ENDPOINT), with faults injected:
a connection dropped halfway, a process killed mid-download, a wrong hash, 404, a server
that stalls, a disk that fills, proxies that refuse. Nothing here reaches the internet.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.hub_server import LoopbackHub
from memdesk.engine.errors import Cancelled, DownloadError, IntegrityError, NotFoundError, StorageFullError
from memdesk.engine.llm.download import CancelToken, DownloadOptions, download_file, part_paths
from memdesk.engine.llm.hub import Timeouts, file_metadata, repo_files
from memdesk.engine.llm.registry import embedded_model_path

ROOT = Path(__file__).resolve().parents[2]
REPO, FILE = "org/Tiny-GGUF", "tiny.gguf"
FAST = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=60), retry_backoff_s=0, progress_interval_s=0,
                       reserve_bytes=1 << 20)


@pytest.fixture(scope="module")
def model_file() -> Path:
    return embedded_model_path()


@pytest.fixture(scope="module")
def model_sha(model_file) -> str:
    return hashlib.sha256(model_file.read_bytes()).hexdigest()


@pytest.fixture
def hub(model_file, monkeypatch):
    server = LoopbackHub()
    server.add_file(REPO, FILE, model_file)
    server.add_file(REPO, "config.json", b'{"model_type": "llama"}\n')
    with server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        yield server


def wait_for(condition, deadline_s: float = 30.0) -> None:
    """Wait for a condition another thread or process makes true; fail at the deadline."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            pytest.fail("the condition did not become true in time")
        time.sleep(0.01)


def leftovers(folder: Path, keep: str = FILE) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_metadata_comes_from_the_hub_headers(hub, model_file, model_sha):
    remote = file_metadata(REPO, FILE)
    assert (remote.size, remote.sha256, remote.git_sha1) == (model_file.stat().st_size, model_sha, None)
    assert remote.commit == hub.commits[REPO]
    small = file_metadata(REPO, "config.json")  # kept in git: its blob id, no sha256
    assert small.sha256 is None and len(small.git_sha1) == 40
    listing = {f.filename: f for f in repo_files(REPO)}
    assert listing[FILE].sha256 == model_sha and listing["config.json"].git_sha1 == small.git_sha1


def test_download_verifies_reports_progress_and_leaves_only_the_model(hub, tmp_path, model_file, model_sha):
    events = []
    result = download_file(file_metadata(REPO, FILE), tmp_path / FILE, on_progress=events.append, options=FAST)
    assert result.sha256 == model_sha and result.attempts == 1 and result.resumed_from == 0
    assert (tmp_path / FILE).read_bytes() == model_file.read_bytes()
    assert leftovers(tmp_path) == []  # no .part, sidecar or lock
    done = [e.done_bytes for e in events]
    assert done == sorted(done) and done[-1] == result.size and events[-1].phase == "done"
    assert any(e.rate_bps > 0 and e.eta_s is not None for e in events if e.phase == "downloading")
    small = download_file(file_metadata(REPO, "config.json"), tmp_path / "config.json", options=FAST)
    assert small.sha256 is None and (tmp_path / "config.json").read_bytes() == b'{"model_type": "llama"}\n'


def test_a_connection_dropped_halfway_is_resumed_with_a_range_request(hub, tmp_path, model_sha):
    remote = file_metadata(REPO, FILE)
    half = remote.size // 2 + 12345
    hub.faults.drop_after = half
    result = download_file(remote, tmp_path / FILE, options=FAST)
    assert result.sha256 == model_sha and result.attempts == 2
    assert hub.ranges() == [None, f"bytes={half}-"]
    assert hub.body_bytes() == remote.size  # nothing was fetched twice


def test_a_download_killed_midway_resumes_in_the_next_process(hub, tmp_path, model_sha):
    remote = file_metadata(REPO, FILE)
    cut = 40_000_000 + 4321
    hub.faults.stall_after = cut
    child = subprocess.Popen([sys.executable, "-m", "tests.engine.download_child", REPO, FILE, str(tmp_path / FILE)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        for line in child.stdout:  # every chunk is reported once it is on disk
            if json.loads(line).get("progress") == cut:
                break
        else:
            pytest.fail(f"the child ended before {cut} bytes (exit {child.wait()})")
        child.send_signal(signal.SIGKILL)  # a crash or power cut of the app, mid-download
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    hub.release.set()
    part, sidecar, _ = part_paths(tmp_path / FILE)
    assert part.stat().st_size == cut and sidecar.exists() and not (tmp_path / FILE).exists()

    result = download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST)
    assert result.resumed_from == cut and result.downloaded_bytes == remote.size - cut
    assert result.sha256 == model_sha and hub.ranges()[-1] == f"bytes={cut}-"
    assert leftovers(tmp_path) == []


def test_a_wrong_hash_deletes_the_download_and_installs_nothing(hub, tmp_path):
    hub.faults.wrong_sha256 = True
    with pytest.raises(IntegrityError, match="does not match its published checksum.*deleted unused") as err:
        download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST)
    assert err.value.exit_code == 13
    assert list(tmp_path.iterdir()) == []


def test_a_catalog_hash_that_the_hub_contradicts_stops_before_downloading(hub, tmp_path):
    with pytest.raises(IntegrityError, match="different file"):
        download_file(file_metadata(REPO, FILE), tmp_path / FILE, expected_sha256="0" * 64, options=FAST)
    assert hub.ranges() == [] and list(tmp_path.iterdir()) == []


def test_404_and_a_missing_repository_say_what_to_do(hub, tmp_path):
    hub.faults.missing.add(f"{REPO}/{FILE}")
    with pytest.raises(NotFoundError, match="tiny.gguf was not found.*catalog may be out of date") as err:
        file_metadata(REPO, FILE)
    assert err.value.exit_code == 5
    with pytest.raises(NotFoundError, match="the repository does not exist"):
        file_metadata("nobody/nothing", FILE)


def test_a_server_that_stalls_is_given_up_on_clearly_and_resumed_later(hub, tmp_path, model_sha):
    remote = file_metadata(REPO, FILE)
    hub.faults.stall_after, hub.faults.stall_count = 10_000_000, 1_000
    stalling = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=0.5), retry_backoff_s=0, max_retries=1,
                               reserve_bytes=1 << 20)
    with pytest.raises(DownloadError, match="stopped sending.*kept, so running the download again resumes") as err:
        download_file(remote, tmp_path / FILE, options=stalling)
    assert err.value.exit_code == 12
    assert part_paths(tmp_path / FILE)[0].stat().st_size == 10_000_000 and not (tmp_path / FILE).exists()
    hub.faults.stall_after = None
    result = download_file(remote, tmp_path / FILE, options=FAST)
    assert result.resumed_from == 10_000_000 and result.sha256 == model_sha


def test_one_stall_is_recovered_within_the_same_download(hub, tmp_path, model_sha):
    hub.faults.stall_after = 5_000_000
    options = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=0.5), retry_backoff_s=0, reserve_bytes=1 << 20)
    result = download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=options)
    assert result.sha256 == model_sha and result.attempts == 2 and hub.ranges()[-1] == "bytes=5000000-"


def test_cancel_interrupts_a_blocked_read_at_once_and_keeps_the_part(hub, tmp_path, model_sha):
    hub.faults.stall_after = 7_000_000
    cancel = CancelToken()
    outcome: list[BaseException] = []
    slow_to_notice = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=120), reserve_bytes=1 << 20)

    def run() -> None:
        try:
            download_file(file_metadata(REPO, FILE), tmp_path / FILE, cancel=cancel, options=slow_to_notice)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread to assert on
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert hub.stalled.wait(30)
    part = part_paths(tmp_path / FILE)[0]
    wait_for(lambda: part.exists() and part.stat().st_size == 7_000_000)  # now the read is blocked
    cancel.cancel()  # from another thread, as the GUI's Cancel button does
    worker.join(timeout=20)  # far below the 120 s read timeout: the socket was shut down
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled) and outcome[0].exit_code == 130
    assert "kept" in str(outcome[0]) and not (tmp_path / FILE).exists()
    hub.release.set()
    hub.faults.stall_after = None
    assert part_paths(tmp_path / FILE)[0].stat().st_size == 7_000_000
    assert download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST).resumed_from == 7_000_000


def test_a_second_downloader_of_the_same_file_is_refused_while_the_first_runs(hub, tmp_path):
    hub.faults.stall_after = 1_000_000
    cancel = CancelToken()
    outcome: list[BaseException] = []

    def first() -> None:
        try:
            download_file(file_metadata(REPO, FILE), tmp_path / FILE, cancel=cancel, options=FAST)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread to assert on
            outcome.append(exc)

    worker = threading.Thread(target=first)
    worker.start()
    try:
        assert hub.stalled.wait(30)
        with pytest.raises(DownloadError, match="being downloaded by another"):
            download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST)
    finally:
        cancel.cancel()
        worker.join(timeout=30)
    assert not worker.is_alive() and len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    # Once the first has stopped, the file can be downloaded (and the lock file is gone).
    hub.release.set()
    hub.faults.stall_after = None
    assert download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST).size > 0
    assert leftovers(tmp_path) == []


def test_a_server_that_ignores_range_restarts_cleanly(hub, tmp_path, model_sha):
    remote = file_metadata(REPO, FILE)
    hub.faults.drop_after = 3_000_000
    hub.faults.ignore_range = True
    result = download_file(remote, tmp_path / FILE, options=FAST)
    assert result.sha256 == model_sha and result.attempts == 2
    assert hub.body_bytes() == remote.size + 3_000_000  # the first 3 MB came twice, and the hash is right


def test_a_part_from_another_version_of_the_file_is_not_reused(hub, tmp_path, model_file, model_sha):
    part, sidecar, _ = part_paths(tmp_path / FILE)
    hub.faults.drop_after, hub.faults.drop_count = 2_000_000, 1
    hub.faults.stall_after = None
    with pytest.raises(DownloadError):
        download_file(file_metadata(REPO, FILE), tmp_path / FILE,
                      options=DownloadOptions(max_retries=0, retry_backoff_s=0, reserve_bytes=1 << 20))
    assert part.stat().st_size == 2_000_000
    # The repository was updated with different bytes under the same name: the old part is discarded.
    changed = model_file.read_bytes()[:-1] + b"\x01"
    hub.add_file(REPO, FILE, changed)
    hub.new_commit(REPO)
    result = download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST)
    assert result.resumed_from == 0 and result.sha256 == hashlib.sha256(changed).hexdigest()


def test_no_network_and_refusing_proxies_give_clear_errors(hub, tmp_path, monkeypatch):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match="connection was refused. Check the internet connection") as err:
        file_metadata(REPO, FILE)
    assert err.value.exit_code == 12

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadError, match=r"proxy .* \(from HTTP_PROXY\) refused the connection"):
        file_metadata(REPO, FILE)

    class LoginProxy(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="office"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), LoginProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        with pytest.raises(DownloadError, match="asks for a login.*http://user:password@host:port"):
            file_metadata(REPO, FILE)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert list(tmp_path.iterdir()) == []


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(hub, tmp_path):
    hub.faults.claim_size = 1 << 60  # an exabyte: more than any disk here has free
    with pytest.raises(StorageFullError, match="Not enough free disk.*Free some space") as err:
        download_file(file_metadata(REPO, FILE), tmp_path / FILE, options=FAST)
    assert err.value.exit_code == 8
    assert hub.ranges() == [] and list(tmp_path.iterdir()) == []


def _unshare_works() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.parametrize("how", ["tmpfs", "file-size limit"])
def test_a_disk_that_fills_mid_download_keeps_the_part_and_resumes_once_there_is_room(hub, tmp_path, how,
                                                                                   model_sha):
    folder = tmp_path / "small"
    folder.mkdir()
    child = [sys.executable, "-m", "tests.engine.download_child", REPO, FILE, str(folder / FILE), "--again"]
    if how == "tmpfs":
        if not _unshare_works():
            pytest.skip("needs unprivileged user and mount namespaces (`unshare -rm`) for a small tmpfs")
        # A 150 MB disk of its own, in a private mount namespace; another program fills it at 30 MB.
        command = ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs -o size=150m tmpfs "{folder}" && exec "$@"',
                   "sh", *child, "--fill-at", "30000000"]
    else:
        if not hasattr(signal, "SIGXFSZ"):
            pytest.skip("RLIMIT_FSIZE is POSIX")
        command = [*child, "--fsize-limit", "33554432"]  # writes past 32 MiB fail with EFBIG
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    failure = next(line for line in lines if "error" in line)
    assert failure["error"] == "StorageFullError" and failure["code"] == 8, proc.stderr
    assert "disk filled up" in failure["message"] and "run the download again" in failure["message"]
    assert failure["part_bytes"] >= 30_000_000 and failure["final_exists"] is False
    done = lines[-1]
    assert proc.returncode == 0, proc.stderr
    assert done["sha256"] == model_sha and done["resumed_from"] == failure["part_bytes"]
    assert [name for name in done["leftovers"] if name != "filler.bin"] == []
