"""`memdesk backup create|restore FILE`, `memdesk passphrase change`, `memdesk key ...`.

Backups are encrypted under a passphrase chosen when the backup is made ($MEMDESK_BACKUP_PASSPHRASE
for headless use), so they restore on a machine without this one's keyring. A new vault
passphrase comes from $MEMDESK_NEW_PASSPHRASE or is asked twice on the terminal.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys

from memdesk.app.cli_format import dump_json
from memdesk.engine.errors import InvalidInputError, KeyUnavailableError

NEW_PASSPHRASE_ENV = "MEMDESK_NEW_PASSPHRASE"


def ask_secret(env: str, prompt: str, *, confirm: bool, what: str) -> str:
    """$env, else asked on the terminal (twice when `confirm`); new ones are checked for length."""
    from memdesk.engine.vault.keys import check_new_passphrase

    value = os.environ.get(env)
    if not value:
        if not (sys.stdin is not None and sys.stdin.isatty()):
            raise KeyUnavailableError(f"MemDesk needs the {what}: set {env} (headless use) or run in a terminal "
                                      "to be asked.")
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("Repeat it: ") != value:
            raise InvalidInputError(f"The two {what}s do not match; nothing was changed. Try again.")
    return check_new_passphrase(value, what) if confirm else value


def cmd_backup(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory, passphrase_provider
    from memdesk.engine.vault.backup import BACKUP_PASSPHRASE_ENV, create_backup, read_header, restore_backup
    from memdesk.engine.vault.paths import data_dir

    if args.action == "create":
        with open_memory(args, embedder=False) as mem:
            secret = ask_secret(BACKUP_PASSPHRASE_ENV, "Passphrase for this backup: ", confirm=True,
                                what="backup passphrase")
            report = create_backup(mem, args.file, secret)
        if args.json:
            dump_json({"file": str(report.path), "bytes": report.bytes, "tables": report.tables}, sys.stdout)
        else:
            print(f"backed up {report.tables.get('memories', 0)} memories and everything else in the profile "
                  f"to {report.path} ({report.bytes / 1e6:.1f} MB, encrypted). Keep the backup passphrase: "
                  "without it the backup cannot be restored.")
        return 0
    if not os.path.isfile(args.file):
        raise InvalidInputError(f"No file {args.file!r}; give the path of a `memdesk backup create` file.")
    header = read_header(args.file)  # a file that is not a backup is refused before asking anything
    secret = ask_secret(BACKUP_PASSPHRASE_ENV, f"Passphrase of the backup made {header.created_at:%Y-%m-%d %H:%M} "
                        "UTC: ", confirm=False, what="backup passphrase")
    report = restore_backup(args.file, data_dir(args.data_dir), args.profile, secret, overwrite=args.overwrite,
                            vault_passphrase=passphrase_provider)
    if args.json:
        dump_json({"profile": str(report.profile.root), "backup_made": report.created_at,
                   "replaced": report.replaced, "key": report.key_mode, "tables": report.tables}, sys.stdout)
    else:
        where = "the OS keyring" if report.key_mode == "keyring" else "your passphrase"
        print(f"restored {report.tables.get('memories', 0)} memories (backup of {report.created_at:%Y-%m-%d %H:%M} "
              f"UTC) into {report.profile.root}{' replacing the profile there' if report.replaced else ''}; "
              f"its key is kept by {where}.")
    return 0


def cmd_passphrase(args: argparse.Namespace) -> int:
    args.key_action = "use-passphrase"
    return cmd_key(args)


def cmd_key(args: argparse.Namespace) -> int:
    from memdesk.app.cli import passphrase_provider
    from memdesk.engine.vault.keys import KeyManager, change_key_storage
    from memdesk.engine.vault.paths import ProfilePaths, data_dir

    paths = ProfilePaths.for_profile(data_dir(args.data_dir), args.profile)
    manager = KeyManager(paths.key_sidecar)
    if not manager.exists():
        raise KeyUnavailableError(f"There is no vault in {paths.root} yet; it is created by the first command "
                                  "that stores something.")
    before = manager.info().mode
    if args.key_action == "status":
        mode = before
    elif args.key_action == "use-keyring":
        mode = change_key_storage(paths.key_sidecar, current=passphrase_provider, mode="keyring").mode
    else:
        new = ask_secret(NEW_PASSPHRASE_ENV, "New passphrase: ", confirm=True, what="new passphrase")
        mode = change_key_storage(paths.key_sidecar, current=passphrase_provider, mode="passphrase",
                                  new_passphrase=new).mode
    if args.json:
        dump_json({"mode": mode, "was": before}, sys.stdout)
    elif args.key_action == "status":
        print("The vault key is kept in the OS keyring." if mode == "keyring"
              else "The vault key is protected by a passphrase.")
    elif mode == "keyring":
        print("The vault key is now kept in the OS keyring; no passphrase is asked any more.")
    else:
        print("The vault is now protected by the new passphrase" +
              (" (its key was removed from the OS keyring)." if before == "keyring" else "."))
    return 0


def register(command, json_flag) -> None:
    p = command("backup", cmd_backup, "an encrypted backup of the whole profile, restorable on another machine")
    p.add_argument("action", choices=["create", "restore"],
                   help="create FILE: write the backup (asks a passphrase for it, or $MEMDESK_BACKUP_PASSPHRASE); "
                        "restore FILE: make the profile from a backup")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--overwrite", action="store_true", help="restore: replace the existing profile")
    json_flag(p)

    p = command("passphrase", cmd_passphrase,
                "change the vault passphrase (from the OS keyring too); the new one comes from "
                f"${NEW_PASSPHRASE_ENV} or is asked twice")
    p.add_argument("action", choices=["change"])
    json_flag(p)

    p = command("key", cmd_key, "how the vault key is kept: status, use-keyring, use-passphrase")
    p.add_argument("key_action", choices=["status", "use-keyring", "use-passphrase"], metavar="ACTION",
                   help="status; use-keyring: keep the key in the OS keyring; use-passphrase: protect it with a "
                        "new passphrase instead")
    json_flag(p)
