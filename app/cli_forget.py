"""`memdesk forget ID` / `memdesk forget --session ID`: erase every copy of some words."""
from __future__ import annotations

import argparse
import sys

from memdesk.app.cli_format import dump_json
from memdesk.engine.errors import InvalidInputError

PROG = "memdesk"


def cmd_forget(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory
    from memdesk.engine.vault.forget import forget_memory, forget_session

    if (args.id is None) == (args.session is None):
        raise InvalidInputError("Give a memory id (`memdesk forget ID`) or a chat (`memdesk forget --session ID`).")
    with open_memory(args, embedder=False) as mem:
        if args.session is not None:
            report = forget_session(mem, args.session, preview=not args.yes)
        else:
            report = forget_memory(mem, args.id, preview=not args.yes)
    if args.json:
        dump_json({"done": bool(args.yes), **report.to_dict()}, sys.stdout)
    elif args.yes:
        print(report.summary())
    if not args.yes:
        what = report.summary().replace("Forgot ", "Would forget ", 1).split("\n")[0]
        print(f"{PROG}: {what.split(';')[0]}. This cannot be undone: add --yes to forget.", file=sys.stderr)
        return 2
    return 0


def register(command, json_flag) -> None:
    p = command("forget", cmd_forget, "erase a memory or a chat and every copy of its words (needs --yes)")
    p.add_argument("id", metavar="ID", nargs="?", help="a memory id (everything derived from the same words goes too)")
    p.add_argument("--session", metavar="ID", help="forget this chat: its transcript and every memory drawn from it")
    p.add_argument("--yes", action="store_true", help="confirm; without it, say what would be forgotten")
    json_flag(p)
