"""`memdesk chat "message"`: one chat turn on the local model, streamed to stdout."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memdesk.app.cli_format import dump_json


def chosen_endpoint(args: argparse.Namespace):
    """The local server this `memdesk chat` talks to (an EndpointConfig), or None for a model file.

    --endpoint URL [--endpoint-model NAME] chooses one (remembered once it answers, by
    `remember_endpoint`); without it the one remembered in settings is used, unless --model names
    a file for this run or --no-endpoint goes back to the model file for good."""
    from memdesk.app import settings_store
    from memdesk.engine.errors import InvalidInputError
    from memdesk.engine.llm.endpoint import EndpointConfig, normalise_url

    url, name = getattr(args, "endpoint", None), getattr(args, "endpoint_model", None)
    settings = settings_store.effective_data_dir(args.data_dir, args.profile)[2].settings
    if url is not None:
        if getattr(args, "model", None):
            raise InvalidInputError("Choose either --model (a file) or --endpoint (a server), not both.")
        url = normalise_url(url)
        kept = settings.endpoint_model if url == settings.endpoint_url else ""
        return EndpointConfig(url, name if name is not None else kept)
    if getattr(args, "no_endpoint", False) or getattr(args, "model", None):
        if name is not None:
            raise InvalidInputError("--endpoint-model names a model on a server; it goes with --endpoint URL.")
        return None
    remembered = settings_store.endpoint_of(settings)
    if name is not None:
        if remembered is None:
            raise InvalidInputError("--endpoint-model needs --endpoint URL (no server is chosen in settings yet).")
        return EndpointConfig(remembered.url, name)
    return remembered


def remember_endpoint(args: argparse.Namespace, model) -> None:
    """Keep the server (and the model it chose) in settings, or forget it (--no-endpoint), so the
    desktop app and later `memdesk chat` runs use the same; says so on stderr when it changed."""
    from dataclasses import replace

    from memdesk.app import settings_store

    _, store, loaded = settings_store.effective_data_dir(args.data_dir, args.profile)
    settings = loaded.settings
    if getattr(args, "no_endpoint", False):
        new = replace(settings, model_source="file")
        note = "chatting with the model file again (the server is no longer used)"
    elif getattr(args, "endpoint", None) is not None or getattr(args, "endpoint_model", None) is not None:
        new = replace(settings, model_source="endpoint", endpoint_url=model.info.path, endpoint_model=model.model_id)
        note = (f"remembered {model.model_id} at {model.info.path} in {store.path}; "
                "`memdesk chat --no-endpoint` goes back to the model file")
    else:
        return
    if new != settings:
        store.save(new)
        print(f"memdesk: {note}.", file=sys.stderr)


def cmd_chat(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory
    from memdesk.engine.activation.states import ActivationCache
    from memdesk.engine.chat.turn import Chat, ChatConfig
    from memdesk.engine.llm.registry import load_model
    from memdesk.engine.reader.jobs import EXTRACT_JOB
    from memdesk.engine.reader.memreader import MemReader
    from memdesk.engine.scheduler.queue import JobQueue

    endpoint = chosen_endpoint(args)
    with open_memory(args, embedder=True) as mem:
        model = load_model(Path(args.model) if args.model else None, backend=args.backend, n_ctx=args.n_ctx,
                           endpoint=endpoint)
        try:
            remember_endpoint(args, model)
            jobs = JobQueue(mem.db)
            reader = MemReader(mem, model, user_name=args.user, use_model=args.model_extraction)
            jobs.handlers[EXTRACT_JOB] = reader.handle_job
            # The memory prefix's KV state persists in the vault, so a later `memdesk chat`
            # process starts from it instead of prefilling it again.
            chat = Chat(mem, model, ChatConfig(max_reply_tokens=args.max_tokens, user_name=args.user,
                                               extract=not args.no_extract, profile=args.context), jobs=jobs,
                        activation=ActivationCache(mem.db))
            mem.wait_indexed()
            response = chat.send(args.message, args.session)
            for piece in response:
                if not args.json:
                    sys.stdout.write(piece)
                    sys.stdout.flush()
            result = response.result
            if args.json:
                json.dump({"session_id": result.session_id, "reply": response.text(), "activation": result.activation,
                           "model": model.info.name, "backend": model.info.backend,
                           "profile": result.profile, "memory_ids": list(result.memory_ids),
                           "preference_ids": list(result.preference_ids),
                           "memories": [m.memory for m in result.memories + result.preferences],
                           "history_used": result.history_used,
                           "stats": {"prompt_tokens": result.stats.prompt_tokens,
                                     "completion_tokens": result.stats.completion_tokens,
                                     "ttft_ms": round(result.stats.prefill_ms, 1),
                                     "total_ms": round(result.stats.total_ms, 1)}}, sys.stdout, indent=2)
                sys.stdout.write("\n")
            else:
                sys.stdout.write(f"\n\n[session {result.session_id}]\n" if sys.stdout.isatty() else "\n")
            # A one-shot process must finish its extraction before it exits (the app runs it in the background).
            jobs.drain()
        finally:
            model.close()
    return 0


def repl(args: argparse.Namespace) -> int:
    """`memdesk` on a terminal: chat with the embedded model until Ctrl-D (the GUI replaces this)."""
    from memdesk.app.cli import open_memory
    from memdesk.engine.activation.states import ActivationCache
    from memdesk.engine.chat.turn import Chat
    from memdesk.engine.llm.registry import load_model
    from memdesk.engine.reader.jobs import EXTRACT_JOB
    from memdesk.engine.reader.memreader import MemReader
    from memdesk.engine.scheduler.memscheduler import MemScheduler
    from memdesk.engine.scheduler.next_scene import Preparer
    from memdesk.engine.scheduler.queue import JobQueue

    with open_memory(args, embedder=True) as mem:
        print(f"MemDesk — {mem.stats()['memories']} memories in {mem.paths.vault}. Loading the model…")
        model = load_model(endpoint=chosen_endpoint(args))
        try:
            jobs = JobQueue(mem.db)
            jobs.handlers[EXTRACT_JOB] = MemReader(mem, model).handle_job
            scheduler = MemScheduler(jobs)
            activation = ActivationCache(mem.db)
            chat = Chat(mem, model, jobs=jobs, activation=activation)
            Preparer(chat, scheduler, activation)
            scheduler.start()  # extraction and the next prefix are prepared while you read
            print(f"Chatting with {model.info.name} on this computer. Ctrl-D to quit.\n")
            session = None
            while True:
                try:
                    text = input("you> ").strip()
                except EOFError:
                    print()
                    break
                if not text:
                    continue
                with scheduler.foreground():  # background prefill gives way at once
                    response = chat.send(text, session)
                    sys.stdout.write("memdesk> ")
                    for piece in response:
                        sys.stdout.write(piece)
                        sys.stdout.flush()
                session = response.result.session_id
                used = len(response.result.memory_ids) + len(response.result.preference_ids)
                print(f"\n  ({used} memories used)\n" if used else "\n")
            scheduler.stop()
            jobs.drain()
        finally:
            model.close()
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from memdesk.app.cli import open_memory
    from memdesk.engine.activation.states import ActivationCache

    with open_memory(args, embedder=False) as mem:
        data = ActivationCache(mem.db).stats()
    if args.json:
        dump_json(data, sys.stdout)
    else:
        print(f"{data['states']} cached prefix states, "
              f"{data['bytes'] / 1e6:.1f} MB of {data['cap_bytes'] / 1e6:.0f} MB")
        for m in data["models"]:
            print(f"  {m['backend']} {m['model']}: {m['states']} states, {m['tokens']} tokens, "
                  f"last used {m['last_used']}")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Queue state as a process sees it on opening: persisted jobs (the app shows its live queue)."""
    from memdesk.app.cli import open_memory
    from memdesk.engine.scheduler.memscheduler import MemScheduler
    from memdesk.engine.scheduler.queue import JobQueue

    with open_memory(args, embedder=False) as mem:
        data = MemScheduler(JobQueue(mem.db)).status()
    if args.json:
        dump_json(data, sys.stdout)
    else:
        print(f"pending: {data['pending'] or 'nothing'}; running: {data['running'] or 'nothing'}")
        for error in data["last_errors"]:
            print(f"  last error ({error['kind']}): {error['error']}")
    return 0


def register(command, json_flag) -> None:
    p = command("scheduler", cmd_scheduler, "background work: status")
    p.add_argument("action", choices=["status"])
    json_flag(p)
    p = command("cache", cmd_cache, "activation memory (precomputed KV states): stats")
    p.add_argument("action", choices=["stats"])
    json_flag(p)

    p = command("chat", cmd_chat, "send one message to the local model, with your memories")
    p.add_argument("message", metavar="MESSAGE")
    p.add_argument("--session", metavar="ID", help="continue this session (default: start a new one)")
    p.add_argument("--model", metavar="PATH", help="a GGUF file or MLX folder (default: the embedded SmolLM2)")
    p.add_argument("--backend", default="auto", choices=["auto", "llama.cpp", "mlx"])
    p.add_argument("--endpoint", metavar="URL",
                   help="chat with a model a server on this computer runs (Ollama http://127.0.0.1:11434, LM Studio "
                        "http://127.0.0.1:1234, llama-server, Jan); remembered in settings for later runs")
    p.add_argument("--endpoint-model", metavar="NAME", help="that server's model (default: the first it lists)")
    p.add_argument("--no-endpoint", action="store_true", help="go back to the model file (forgets the server choice)")
    p.add_argument("--n-ctx", type=int, default=4096, metavar="N",
                   help="context window (default: %(default)s; a server's own when it reports one)")
    p.add_argument("--max-tokens", type=int, default=256, metavar="N", help="longest reply (default: %(default)s)")
    p.add_argument("--user", default="User", help="your name, used in memories (default: %(default)s)")
    p.add_argument("--context", default="auto", choices=["auto", "compact", "full"],
                   help="how memories are laid out: by the model's size, compact (small models) or full")
    p.add_argument("--no-extract", action="store_true", help="do not mine this turn for lasting memories")
    p.add_argument("--no-model-extraction", dest="model_extraction", action="store_false",
                   help="extract with the deterministic rules only")
    json_flag(p)
