"""`memdesk ingest PATH`: read a notes folder (or one file) into the vault once and report."""
from __future__ import annotations

import argparse
import sys

from memdesk.app.cli_format import dump_json


def cmd_ingest(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory
    from memdesk.engine.ingestion.folders import Ingestor

    def progress(done: int, total: int, path: str) -> None:
        if show_progress:
            sys.stderr.write(f"\r{done}/{total} files")
            sys.stderr.flush()

    show_progress = sys.stderr is not None and sys.stderr.isatty() and not args.json
    with open_memory(args, embedder=not args.no_embed) as mem:
        report = Ingestor(mem, max_bytes=int(args.max_mb * 1024 * 1024)).scan(args.path, on_progress=progress)
        if show_progress and report.files:
            sys.stderr.write("\n")
        if not args.no_embed:
            mem.wait_indexed()  # vectors now, so the next search does not wait for them
    if args.json:
        dump_json(report.to_dict(), sys.stdout)
        return 0
    print(f"{report.path}: {len(report.added)} new, {len(report.updated)} changed, {report.unchanged} unchanged, "
          f"{len(report.renamed)} moved, {len(report.archived)} removed, {len(report.skipped)} skipped "
          f"({report.chunks_added} memories added, {report.chunks_archived} archived) "
          f"in {report.seconds:.2f} s")
    for old, new in report.renamed:
        print(f"  moved: {old} -> {new}")
    for skipped in report.skipped:
        print(f"  skipped: {skipped.path}: {skipped.reason}")
    return 0


def register(command, json_flag) -> None:
    p = command("ingest", cmd_ingest, "read a folder of notes (.md, .txt) or one file; only changes are re-read")
    p.add_argument("path", metavar="PATH", help="a folder (read recursively) or a file")
    p.add_argument("--max-mb", type=float, default=5.0, metavar="MB",
                   help="skip files larger than this (default: %(default)s)")
    p.add_argument("--no-embed", action="store_true",
                   help="store text only; vectors are computed by the next search or by the app")
    json_flag(p)
