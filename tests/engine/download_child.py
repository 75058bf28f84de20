"""A download in a process of its own, for the faults a test process cannot suffer itself:
being killed mid-download (a restart), or a disk that fills up (a small tmpfs in a private
mount namespace, or a file-size limit).

    python -m tests.engine.download_child REPO FILE DEST [--fill-at N] [--fsize-limit N] [--again]

Prints one JSON object per line: {"progress": bytes} for every chunk, {"error": class,
"code": exit code, "message", "part_bytes"} when the download fails, and {"done": path,
"sha256", "resumed_from"} when it succeeds. With --again a failed download is tried once
more after the cause is removed (the filler deleted, the size limit lifted).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from memdesk.engine.errors import MemDeskError
from memdesk.engine.llm.download import DownloadOptions, download_file, part_paths
from memdesk.engine.llm.hub import Timeouts, file_metadata


def say(**data) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("repo")
    parser.add_argument("file")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--fill-at", type=int, help="after this many bytes, fill the disk but for 2 MiB")
    parser.add_argument("--fsize-limit", type=int, help="RLIMIT_FSIZE: writes past this size fail (EFBIG)")
    parser.add_argument("--again", action="store_true", help="after a failure, remove its cause and resume")
    args = parser.parse_args()
    filler = args.dest.parent / "filler.bin"
    if args.fsize_limit:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails with EFBIG instead of killing us
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    filled = False

    def progress(p) -> None:
        nonlocal filled
        say(progress=p.done_bytes)
        if args.fill_at and not filled and p.done_bytes >= args.fill_at:
            filled = True  # another program takes the disk while the download runs
            free = shutil.disk_usage(args.dest.parent).free
            with open(filler, "wb") as fh:
                fh.write(b"\0" * (free - (2 << 20)))

    options = DownloadOptions(timeouts=Timeouts(connect_s=10, read_s=60), retry_backoff_s=0, reserve_bytes=1 << 20,
                              progress_interval_s=0)
    remote = file_metadata(args.repo, args.file)
    try:
        result = download_file(remote, args.dest, on_progress=progress, options=options)
    except MemDeskError as exc:
        part = part_paths(args.dest)[0]
        say(error=type(exc).__name__, code=exc.exit_code, message=str(exc),
            part_bytes=part.stat().st_size if part.exists() else None, final_exists=args.dest.exists())
        if not args.again:
            return exc.exit_code
        if filler.exists():
            filler.unlink()
        if args.fsize_limit:
            import resource

            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        result = download_file(remote, args.dest, options=options)
    say(done=str(result.path), sha256=result.sha256, resumed_from=result.resumed_from,
        leftovers=sorted(p.name for p in args.dest.parent.iterdir() if p.name != args.dest.name))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
