"""`memdesk model ...`: the model catalog, downloads, the models a person has, and MLX export.

    memdesk model list                      catalog models, what is downloaded, what is in use
    memdesk model recommend                 what this computer can run, and one default
    memdesk model download NAME [--use]     download and verify (resumes an interrupted download)
    memdesk model use NAME|PATH|embedded    the model the app and chat use (settings.json)
    memdesk model remove NAME               delete a download, or forget an added model
    memdesk model add PATH | --known        a .gguf, an MLX folder, LM Studio / GPT4All folders, in place
    memdesk model folder [PATH | --reset]   where downloads go
    memdesk model export-mlx OUT            the GGUF as an MLX / Hugging Face folder

The engine does the work (engine/llm/catalog.py, hardware.py, library.py, download.py);
this module parses, shows progress on stderr and prints results (text or --json).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from memdesk.app.cli_format import dump_json
from memdesk.engine.errors import InvalidInputError, NotFoundError

ACTION_HELP = ("list: catalog models and yours; recommend: what fits this computer; download NAME; use NAME|PATH; "
               "remove NAME; add PATH (or --known); folder [PATH]; export-mlx OUT")


# ------------------------------------------------------------------ context
def _context(args: argparse.Namespace):
    """The library (models folder under the data folder in use) and this profile's settings store."""
    from memdesk.app.settings_store import effective_data_dir
    from memdesk.engine.llm.library import ModelLibrary

    folder, store, _ = effective_data_dir(args.data_dir, args.profile)
    return ModelLibrary(folder), store


def _in_use(store) -> str:
    """The model path settings.json names ("" = the embedded default)."""
    loaded = store.load()
    for message in loaded.messages:
        print(f"memdesk: note: {message}", file=sys.stderr)
    return loaded.settings.model_path


def _installed_names(library) -> set[str]:
    return {model.name for model in library.installed() if model.source == "catalog"}


# ------------------------------------------------------------------ actions
def cmd_list(args: argparse.Namespace) -> int:
    from memdesk.engine.llm.hardware import assess, detect_hardware

    library, store = _context(args)
    hardware = detect_hardware(library.folder)
    in_use = _in_use(store)
    installed = library.installed()
    rows = []
    for entry in library.catalog.entries:
        have = [fmt for fmt in entry.formats if library.is_installed(entry, fmt)]
        verdict = assess(entry, hardware, installed=bool(have))
        partial = next((p for p in (library.partial(entry, fmt) for fmt in entry.formats) if p), None)
        paths = [str(library.target(entry, fmt)) for fmt in have]
        rows.append({"name": entry.name, "title": entry.title, "family": entry.family, "params_b": entry.params_b,
                     "formats": list(entry.formats), "size_bytes": verdict.download_bytes,
                     "ram_gb": entry.ram_gb, "context_length": entry.context_length, "licence": entry.licence,
                     "licence_url": entry.licence_url, "good_for": entry.good_for, "fit": verdict.fit,
                     "reason": verdict.reason, "downloaded": have, "paths": paths,
                     "partial_bytes": partial.done_bytes if partial else 0, "in_use": in_use in paths})
    added = [{**m.to_dict(), "in_use": str(m.path) == in_use} for m in installed if m.source == "added"]
    if args.json:
        dump_json({"catalog_version": library.catalog.version, "models_folder": str(library.folder),
                   "in_use": in_use or None, "catalog": rows, "added": added}, sys.stdout)
        return 0
    print(f"{'NAME':<26} {'SIZE':>8}  {'FIT':<12}  STATUS")
    for row in rows:
        status = ("downloaded" + (" (" + ", ".join(row["downloaded"]) + ")" if len(row["downloaded"]) > 1 else "")
                  if row["downloaded"] else f"partial, {_size(row['partial_bytes'])}" if row["partial_bytes"] else "")
        status += ", in use" if row["in_use"] else ""
        print(f"{row['name']:<26} {_size(row['size_bytes']):>8}  {row['fit']:<12}  {status}")
    if added:
        print("\nAdded (used in place, not copied):")
        for model in added:
            flag = "" if model["present"] else "  [missing: drive unplugged?]"
            print(f"  {model['name']:<24} {model['backend']:<9} {model['path']} ({model['origin']})"
                  f"{', in use' if model['in_use'] else ''}{flag}")
    print(f"\nIn use: {in_use or 'the embedded SmolLM2-135M-Instruct'}. Models folder: {library.folder}")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from memdesk.engine.llm.hardware import detect_hardware, recommend

    library, _ = _context(args)
    result = recommend(detect_hardware(library.folder), library.catalog, _installed_names(library))
    if args.json:
        dump_json(result.to_dict(), sys.stdout)
        return 0
    print(f"This computer: {result.hardware.summary()}\n")
    for item in result.assessments:
        mark = "*" if item.name == result.default else " "
        print(f"{mark} {item.name:<26} {item.fmt:<4} {_size(item.download_bytes):>8}  {item.fit:<12}  {item.reason}")
    if result.default:
        print(f"\nRecommended: {result.default} ({result.why}).\n  memdesk model download {result.default} --use")
    else:
        print(f"\n{result.why}.")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from memdesk.engine.errors import Cancelled
    from memdesk.engine.llm.download import CancelToken
    from memdesk.engine.llm.hardware import WILL_NOT_FIT, assess, detect_hardware, preferred_format

    name = _need(args, "download NAME")
    library, store = _context(args)
    entry = library.catalog.get(name)
    hardware = detect_hardware(library.folder)
    fmt = preferred_format(entry, hardware) if args.format == "auto" else args.format
    if fmt not in entry.formats:
        raise InvalidInputError(f"{entry.name} has no {fmt.upper()} version in the catalog; use --format gguf.")
    already = library.is_installed(entry, fmt)
    verdict = assess(entry, hardware, fmt=fmt, installed=already)
    # Memory decides here; free disk is checked by the download itself, against the Hub's exact size.
    if verdict.fit == WILL_NOT_FIT and verdict.disk_ok and not args.force and not already:
        raise InvalidInputError(f"{entry.name} {WILL_NOT_FIT} this computer: {verdict.reason}. Choose a smaller "
                                "model (`memdesk model recommend`), or add --force to download it anyway.")
    if not already and not args.json:
        print(f"{entry.title} ({fmt}, about {_size(entry.size_bytes(fmt))}) from {entry.repo(fmt)}\n"
              f"  licence: {entry.licence} ({entry.licence_url})\n  into {library.target(entry, fmt)}",
              file=sys.stderr)
    cancel = CancelToken()
    show = ProgressLine(sys.stderr)
    try:
        model = library.download(entry, fmt, cancel=cancel, on_progress=None if args.json else show)
    except KeyboardInterrupt:
        cancel.cancel()
        show.finish()
        raise Cancelled(f"Stopped. What was downloaded of {entry.name} is kept: run `memdesk model download "
                        f"{entry.name}` again to resume (`memdesk model remove {entry.name}` deletes it).") from None
    show.finish()
    used = _set_model(store, str(model.path)) if args.use else None
    if args.json:
        dump_json({**model.to_dict(), "licence": entry.licence, "licence_url": entry.licence_url,
                   "already_downloaded": already, "in_use": used is not None}, sys.stdout)
        return 0
    print(f"{entry.name} {'was already downloaded' if already else 'downloaded and verified'}: {model.path} "
          f"({_size(model.size_bytes)})")
    print("MemDesk uses it from the next start." if used is not None else
          f"Use it: memdesk model use {entry.name}")
    return 0


def cmd_use(args: argparse.Namespace) -> int:
    from memdesk.engine.llm.registry import check_model_path

    target = _need(args, "use NAME|PATH|embedded")
    library, store = _context(args)
    if target.lower() in ("embedded", "default"):
        path = ""
    else:
        path = str(_resolve(library, target, args.format))
        check_model_path(Path(path))
    _set_model(store, path)
    if args.json:
        dump_json({"model_path": path or None, "settings": str(store.path)}, sys.stdout)
    else:
        print(f"MemDesk will use {path or 'the embedded SmolLM2-135M-Instruct'} from the next start "
              f"(saved in {store.path}).")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    name = _need(args, "remove NAME")
    library, store = _context(args)
    in_use = _in_use(store)
    mine = [m for m in library.find(name) if str(m.path) == in_use]
    if mine and not args.force:
        raise InvalidInputError(f"{name} is the model MemDesk uses ({in_use}). Choose another first "
                                f"(`memdesk model use NAME`, or `use embedded`), or add --force to remove it and "
                                "go back to the embedded model.")
    report = library.remove(name)
    if mine:
        _set_model(store, "")
    if args.json:
        dump_json({"name": report.name, "deleted": [str(p) for p in report.deleted], "forgotten": report.forgotten,
                   "freed_bytes": report.freed_bytes, "back_to_embedded": bool(mine)}, sys.stdout)
        return 0
    if report.forgotten:
        print(f"Forgot {report.name}; its files were left where they are.")
    else:
        print(f"Removed {report.name}: {len(report.deleted)} item(s), {_size(report.freed_bytes)} freed.")
    if mine:
        print("MemDesk goes back to the embedded SmolLM2-135M-Instruct.")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from memdesk.engine.llm.library import known_model_folders

    library, _ = _context(args)
    if args.known:
        folders = known_model_folders()
        if not folders:
            raise NotFoundError("No LM Studio or GPT4All model folder was found. Give the folder with "
                                "`memdesk model add PATH`.")
        models = []
        for _, folder in folders:
            try:
                models += library.add(folder)
            except InvalidInputError as exc:  # an app installed but with no models yet
                print(f"memdesk: note: {exc}", file=sys.stderr)
    else:
        models = library.add(Path(_need(args, "add PATH")), name=args.name)
    if args.json:
        dump_json([m.to_dict() for m in models], sys.stdout)
        return 0
    for model in models:
        print(f"added {model.name}: {model.path} ({model.backend}, {model.origin}, not copied)")
    if models:
        print(f"Use one: memdesk model use {models[0].name}")
    return 0


def cmd_folder(args: argparse.Namespace) -> int:
    library, _ = _context(args)
    if args.reset:
        library.set_folder(None)
    elif args.arg:
        library.set_folder(Path(args.arg))
    if args.json:
        dump_json({"models_folder": str(library.folder)}, sys.stdout)
    else:
        print(f"Models are downloaded to {library.folder}" + (" (existing downloads were not moved)"
                                                              if args.reset or args.arg else ""))
    return 0


def cmd_export_mlx(args: argparse.Namespace) -> int:
    from memdesk.engine.llm.export import main as export_main

    out = _need(args, "export-mlx OUT")
    argv = ([args.gguf] if args.gguf else []) + [out] + (["--overwrite"] if args.overwrite else [])
    return export_main(argv)


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list, "recommend": cmd_recommend, "download": cmd_download, "use": cmd_use, "remove": cmd_remove,
    "add": cmd_add, "folder": cmd_folder, "export-mlx": cmd_export_mlx,
}


def cmd_model(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args)


def register(command, json_flag) -> None:
    p = command("model", cmd_model, "chat models: the catalog, downloads, your own models, MLX export")
    p.add_argument("action", choices=list(ACTIONS), help=ACTION_HELP)
    p.add_argument("arg", nargs="?", metavar="NAME|PATH", help="the model name, file or folder the action needs")
    p.add_argument("--format", choices=["auto", "gguf", "mlx"], default="auto",
                   help="download/use: GGUF (llama.cpp) or MLX (Apple Silicon); auto picks for this computer")
    p.add_argument("--use", action="store_true", help="download: use the model once it is verified")
    p.add_argument("--force", action="store_true",
                   help="download: even if it will not fit; remove: even the model in use")
    p.add_argument("--name", help="add: the name to list the model under")
    p.add_argument("--known", action="store_true", help="add: every model in LM Studio's and GPT4All's folders")
    p.add_argument("--reset", action="store_true", help="folder: back to the models folder in the data folder")
    p.add_argument("--gguf", metavar="PATH", help="export-mlx: the GGUF to export (default: the embedded model)")
    p.add_argument("--overwrite", action="store_true", help="export-mlx: replace OUT if it exists")
    json_flag(p)


# ------------------------------------------------------------------ helpers
def _need(args: argparse.Namespace, usage: str) -> str:
    if not args.arg:
        raise InvalidInputError(f"Say which model: `memdesk model {usage}` (`memdesk model list` shows the names).")
    return args.arg


def _resolve(library, target: str, fmt: str) -> Path:
    """A name of a downloaded or added model, else an existing path."""
    from memdesk.engine.llm.hardware import detect_hardware, preferred_format

    matches = library.find(target)
    if matches:
        if len(matches) > 1:  # both a GGUF and an MLX download of one catalog model
            entry = library.catalog.find(target)
            wanted = preferred_format(entry, detect_hardware()) if fmt == "auto" and entry else fmt
            backend = "mlx" if wanted == "mlx" else "llama.cpp"
            matches = [m for m in matches if m.backend == backend] or matches
        return matches[0].path
    if library.catalog.find(target):
        raise NotFoundError(f"{target} is not downloaded yet: `memdesk model download {target}` first.")
    path = Path(target).expanduser()
    if path.exists():
        return path.absolute()
    raise NotFoundError(f"No model called {target!r} and no such file. `memdesk model list` shows the names.")


def _set_model(store, path: str) -> str:
    loaded = store.load()  # re-read: the app may have saved other settings since
    settings = loaded.settings
    settings.model_path = path
    settings.backend = "auto"  # a file means llama.cpp and a folder MLX; a forced backend could contradict it
    settings.model_source = "file"  # a model file, not a server (the server's address stays remembered)
    store.save(settings)
    return path


def _size(nbytes: int) -> str:
    if nbytes >= 1_000_000_000:
        return f"{nbytes / 1e9:.2f} GB"
    return f"{nbytes / 1e6:.0f} MB"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
        else f"{seconds // 60}:{seconds % 60:02d}"


class ProgressLine:
    """One line rewritten in place on a terminal; a line per 10% when stderr is a file or pipe."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._last_decile = -1
        self._drawn = False

    def __call__(self, progress) -> None:
        percent = int(100 * progress.fraction)
        phase = {"checking": "checking what was already downloaded", "verifying": "verifying"}.get(progress.phase, "")
        text = (f"{progress.label}: {_size(progress.done_bytes)} / {_size(progress.total_bytes)} {percent:3d}%  "
                f"{progress.rate_bps / 1e6:6.1f} MB/s  {_duration(progress.eta_s)} left"
                + (f"  ({phase})" if phase else ""))
        if self.tty:
            self.stream.write("\r" + text.ljust(100)[:100])
            self.stream.flush()
            self._drawn = True
        elif percent // 10 != self._last_decile:
            self._last_decile = percent // 10
            self.stream.write(text + "\n")
            self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
