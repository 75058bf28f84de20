"""Model downloads over loopback: throughput, and what a resume costs.

    python -m bench.download --out bench/results/download.json

A LoopbackHub (bench/hub_server.py: the Hugging Face URL layout on 127.0.0.1) serves the
embedded GGUF (98 MB, a real model) and a synthetic --big-mb file; engine.llm.download
fetches them into a temporary folder, hashing as the bytes arrive and renaming the file
into place once the sha256 matches. Figures:
- throughput: MB/s of whole downloads (request to verified file in place), median of
  --reps; next to it, the ceiling of this machine: a bare http.client read of the same
  bytes that neither writes nor hashes, and sha256 alone over bytes in memory;
- resume after a dropped connection: the server cuts the connection at half the file; the
  same call resumes with a Range request; bytes served / file size (1.000 = nothing fetched
  twice) and the time against an uncut download;
- resume after a restart: a download in a separate process is killed (SIGKILL) at half the
  file; a new call finds the .part, hashes it (the "checking" phase) and fetches the rest.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import write_report  # noqa: E402
from bench.hub_server import LoopbackHub  # noqa: E402
from memdesk.engine.llm.download import DownloadOptions, download_file  # noqa: E402
from memdesk.engine.llm.hub import Timeouts, file_metadata  # noqa: E402
from memdesk.engine.llm.registry import embedded_model_path  # noqa: E402

REPO = "bench/Models"
OPTIONS = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=60), retry_backoff_s=0, reserve_bytes=1 << 20)
MB = 1_000_000

# The killed process of the restart measurement: it prints each byte count it has on disk.
_CHILD = """
import os, sys
from pathlib import Path
from memdesk.engine.llm.download import DownloadOptions, download_file
from memdesk.engine.llm.hub import file_metadata
def show(p):
    print(p.done_bytes, flush=True)
download_file(file_metadata(sys.argv[1], sys.argv[2]), Path(sys.argv[3]), on_progress=show,
              options=DownloadOptions(reserve_bytes=1 << 20, progress_interval_s=0))
"""


def fresh(folder: Path, name: str) -> Path:
    for path in folder.glob(name + "*"):
        path.unlink()
    return folder / name


def throughput(hub: LoopbackHub, name: str, folder: Path, reps: int) -> dict:
    remote = file_metadata(REPO, name)
    seconds = []
    for _ in range(reps):
        dest = fresh(folder, name)
        started = time.perf_counter()
        result = download_file(remote, dest, options=OPTIONS)
        seconds.append(time.perf_counter() - started)
        assert result.sha256 == hub.sha256(REPO, name)
    median = statistics.median(seconds)
    return {"file": name, "bytes": remote.size, "reps": reps, "seconds_median": round(median, 3),
            "mb_per_s_median": round(remote.size / median / MB, 1),
            "mb_per_s_min": round(remote.size / max(seconds) / MB, 1),
            "mb_per_s_max": round(remote.size / min(seconds) / MB, 1),
            "bare_read_mb_per_s": bare_read(hub, name), "sha256_only_mb_per_s": hash_speed(hub, name)}


def bare_read(hub: LoopbackHub, name: str) -> float:
    """The same bytes through http.client with nothing written or hashed: the loopback ceiling."""
    parts = urlsplit(hub.url)
    seconds = []
    for _ in range(3):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        started = time.perf_counter()
        conn.request("GET", f"/cdn/{REPO}/{name}")
        response = conn.getresponse()
        total = 0
        while chunk := response.read1(1 << 20):
            total += len(chunk)
        seconds.append(time.perf_counter() - started)
        conn.close()
    return round(total / statistics.median(seconds) / MB, 1)


def hash_speed(hub: LoopbackHub, name: str) -> float:
    source = hub.repos[REPO][name].source
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    started = time.perf_counter()
    hashlib.sha256(data).hexdigest()
    return round(len(data) / (time.perf_counter() - started) / MB, 1)


def resume_after_drop(hub: LoopbackHub, name: str, folder: Path, uncut_s: float) -> dict:
    remote = file_metadata(REPO, name)
    dest = fresh(folder, name)
    served_before = hub.body_bytes()
    hub.faults.drop_after, hub.faults.drop_count = remote.size // 2, 1
    started = time.perf_counter()
    result = download_file(remote, dest, options=OPTIONS)
    seconds = time.perf_counter() - started
    served = hub.body_bytes() - served_before
    return {"file": name, "bytes": remote.size, "cut_at": remote.size // 2, "attempts": result.attempts,
            "range_asked": hub.ranges()[-1], "bytes_served_over_size": round(served / remote.size, 4),
            "seconds": round(seconds, 3), "uncut_seconds_median": round(uncut_s, 3),
            "verified": result.sha256 == hub.sha256(REPO, name)}


def resume_after_restart(hub: LoopbackHub, name: str, folder: Path) -> dict:
    remote = file_metadata(REPO, name)
    dest = fresh(folder, name)
    cut = remote.size // 2
    hub.release.clear()
    hub.stalled.clear()
    hub.faults.stall_after, hub.faults.stall_count = cut, 1
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-c", _CHILD, REPO, name, str(dest)], cwd=root, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(root)})
    for line in child.stdout:
        if int(line) == cut:
            break
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    hub.release.set()
    logged = len(hub.requests)
    phases: dict[str, float] = {}
    started = time.perf_counter()

    def mark(progress) -> None:
        phases.setdefault(progress.phase, time.perf_counter() - started)

    result = download_file(remote, dest, options=OPTIONS, on_progress=mark)
    seconds = time.perf_counter() - started
    # Only the new process's requests: the killed one's is logged whenever its handler ends.
    resumed = [r for r in hub.requests[logged:] if r.method == "GET" and r.path.startswith("/cdn/") and r.range]
    return {"file": name, "bytes": remote.size, "killed_at": cut, "resumed_from": result.resumed_from,
            "range_asked": [r.range for r in resumed], "bytes_served_after_restart": sum(r.body_bytes for r in resumed),
            "check_existing_part_s": round(phases.get("downloading", 0.0), 3), "seconds": round(seconds, 3),
            "verified": result.sha256 == hub.sha256(REPO, name)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--big-mb", type=int, default=512, help="size of the synthetic file (default: %(default)s)")
    args = parser.parse_args(argv)
    hub = LoopbackHub()
    hub.add_file(REPO, "model.gguf", embedded_model_path())
    hub.add_file(REPO, "big.gguf", os.urandom(args.big_mb * MB))
    rows, drops, restarts = [], [], []
    with hub, tempfile.TemporaryDirectory(prefix="memdesk-download-") as tmp:
        os.environ["HF_ENDPOINT"] = hub.url
        folder = Path(tmp)
        for name in ("model.gguf", "big.gguf"):
            row = throughput(hub, name, folder, args.reps)
            rows.append(row)
            drops.append(resume_after_drop(hub, name, folder, row["seconds_median"]))
            restarts.append(resume_after_restart(hub, name, folder))
    write_report({"throughput": rows, "resume_after_drop": drops, "resume_after_restart": restarts,
                  "transport": "loopback 127.0.0.1, http (no TLS), bench/hub_server.py on the same machine"},
                 args.out, "bench.download", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
