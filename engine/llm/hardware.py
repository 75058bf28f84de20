"""What this computer can run: memory, Apple Silicon, an NVIDIA GPU, free disk, and a verdict
("fits well", "slow", "will not fit") for every catalog model, with one default.

Detection only reads what the platform reports (psutil or /proc, cgroup limits, sysctl,
`nvidia-smi`); nothing is benchmarked, so it takes well under a second. The verdicts are
rules of thumb with the reasons spelled out, because a person deciding on a multi-GB
download deserves to know why one model is suggested over another.

    python -m engine.llm.hardware     # prints what was detected and the verdicts, as JSON
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from memdesk.engine.llm.catalog import GB, GGUF, MLX, Catalog, CatalogEntry, load_catalog

log = logging.getLogger(__name__)

FITS_WELL, SLOW, WILL_NOT_FIT = "fits well", "slow", "will not fit"

# On a CPU every generated token reads all the weights once. Laptop memory moves roughly
# 25-50 GB/s, so up to ~2.5 GB of weights still gives 10+ tokens a second (faster than
# reading); a 7B Q4 model (4.4-4.9 GB) gives a few words a second.
CPU_FAST_WEIGHTS = int(2.5 * GB)
# Reading the prompt (MemDesk's memories, often 1-4k tokens) is compute-bound instead: with
# fewer than 4 cores a 3B model takes most of a minute before the first word, so keep lighter.
FEW_CORES, FEW_CORES_FAST_WEIGHTS = 4, int(1.2 * GB)
# The OS, a browser and MemDesk itself need the rest: above 60% of RAM other programs
# start to page, above 85% the model itself does.
RAM_COMFORT, RAM_MAX = 0.60, 0.85
# macOS lets the GPU wire about two thirds to three quarters of unified memory
# (Metal's recommendedMaxWorkingSetSize); beyond that llama.cpp and MLX slow to a crawl.
METAL_SHARE = 0.70
# The CUDA context, scratch buffers and the desktop take part of a GPU's memory.
VRAM_SHARE = 0.90
# A download never takes the disk down to its last megabytes (engine/llm/download.py too).
DISK_RESERVE = 200 * 1024 * 1024
_NVIDIA_SMI_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Gpu:
    name: str
    total_bytes: int | None  # None where the driver does not report it
    free_bytes: int | None
    vendor: str = "nvidia"


@dataclass(frozen=True)
class Hardware:
    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    machine: str
    cpu_count: int
    total_ram: int  # bytes; a container's memory limit when it is lower than the machine's
    available_ram: int
    apple_silicon: bool
    gpus: tuple[Gpu, ...]
    gpu_offload: bool | None  # this llama.cpp build can use a GPU; None when there is no GPU to use
    disk_path: str  # where free disk was measured (the models folder, or its nearest parent)
    disk_free: int | None

    @property
    def best_gpu(self) -> Gpu | None:
        sized = [gpu for gpu in self.gpus if gpu.total_bytes]
        return max(sized, key=lambda gpu: gpu.total_bytes or 0) if sized else (self.gpus[0] if self.gpus else None)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        gpu = self.best_gpu
        if self.apple_silicon:
            accel = "Apple Silicon (unified memory, Metal/MLX)"
        elif gpu is None:
            accel = "no GPU found"
        else:
            memory = f", {_gb(gpu.total_bytes)}" if gpu.total_bytes else ""
            accel = f"GPU {gpu.name}{memory}" + ("" if self.gpu_offload else " (this llama.cpp build cannot use it)")
        disk = f"{_gb(self.disk_free)} free in {self.disk_path}" if self.disk_free is not None else "free disk unknown"
        return (f"{_gb(self.total_ram)} RAM ({_gb(self.available_ram)} free), {self.cpu_count} CPU cores, "
                f"{accel}, {disk}")


@dataclass(frozen=True)
class Assessment:
    name: str
    fmt: str  # the format a download would fetch on this computer
    fit: str  # FITS_WELL, SLOW or WILL_NOT_FIT
    reason: str
    download_bytes: int
    ram_bytes: int
    installed: bool
    disk_ok: bool = True  # False: the verdict is "will not fit" for want of free disk, not of memory


@dataclass(frozen=True)
class Recommendation:
    hardware: Hardware
    assessments: tuple[Assessment, ...]
    default: str | None  # the catalog name to suggest; None: keep the embedded model
    why: str

    def to_dict(self) -> dict:
        return {"hardware": self.hardware.to_dict(), "summary": self.hardware.summary(), "default": self.default,
                "why": self.why, "models": [asdict(a) for a in self.assessments]}


# ------------------------------------------------------------------ detection
def detect_hardware(models_dir: Path | None = None, *, check_llama_gpu: bool = True) -> Hardware:
    total, available = _memory()
    gpus = _nvidia_gpus()
    offload = _llama_gpu_offload() if gpus and check_llama_gpu else None
    disk_path, disk_free = _disk_free(models_dir)
    return Hardware(system=platform.system(), machine=platform.machine(), cpu_count=os.cpu_count() or 1,
                    total_ram=total, available_ram=available, apple_silicon=_apple_silicon(), gpus=gpus,
                    gpu_offload=offload, disk_path=disk_path, disk_free=disk_free)


def _memory() -> tuple[int, int]:
    try:
        import psutil

        info = psutil.virtual_memory()
        total, available = int(info.total), int(info.available)
    except ImportError:  # psutil comes with MemDesk's dependencies; /proc keeps Linux working without it
        total, available = _proc_meminfo()
    limit = _cgroup_limit()
    if limit and limit < total:  # in a container the limit is what the model may use
        total, available = limit, min(available, limit)
    return total, available


def _proc_meminfo() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return values.get("MemTotal", 0), values.get("MemAvailable", values.get("MemFree", 0))


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # cgroup v1 writes a huge number for "no limit"
            return int(text)
    return None


def _apple_silicon() -> bool:
    if sys.platform != "darwin":
        return False
    if platform.machine() == "arm64":
        return True
    try:  # an x86 Python under Rosetta reports x86_64 on an Apple Silicon Mac
        out = subprocess.run(["sysctl", "-n", "hw.optional.arm64"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "1"


def _nvidia_gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs as the driver's own tool reports them (it ships with every NVIDIA driver)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return ()
    try:
        out = subprocess.run([tool, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=_NVIDIA_SMI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("nvidia-smi did not answer: %s", exc)
        return ()
    if out.returncode != 0:
        log.info("nvidia-smi failed (%s): %s", out.returncode, out.stderr.strip()[:200])
        return ()
    return parse_nvidia_smi(out.stdout)


def parse_nvidia_smi(text: str) -> tuple[Gpu, ...]:
    """Lines of "name, total MiB, free MiB"; "[N/A]" (some laptops, MIG) means unknown."""
    def mib(value: str) -> int | None:
        value = value.strip()
        return int(float(value) * 1024 * 1024) if value.replace(".", "", 1).isdigit() else None

    gpus = []
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) == 3 and parts[0]:
            gpus.append(Gpu(parts[0], mib(parts[1]), mib(parts[2])))
    return tuple(gpus)


def _llama_gpu_offload() -> bool | None:
    """Whether the installed llama.cpp was built with GPU support (the PyPI build is CPU-only)."""
    try:
        import llama_cpp
    except ImportError:
        return None
    probe = getattr(llama_cpp, "llama_supports_gpu_offload", None)
    return bool(probe()) if probe is not None else None


def _disk_free(models_dir: Path | None) -> tuple[str, int | None]:
    if models_dir is None:
        return "", None
    path = Path(models_dir).expanduser().absolute()
    while not path.exists() and path != path.parent:  # the folder is created by the first download
        path = path.parent
    try:
        return str(path), shutil.disk_usage(path).free
    except OSError:
        return str(path), None


# ------------------------------------------------------------------ verdicts
def preferred_format(entry: CatalogEntry, hardware: Hardware) -> str:
    """MLX on Apple Silicon when the entry has it (faster there), GGUF everywhere else."""
    return MLX if hardware.apple_silicon and entry.mlx else GGUF


def assess(entry: CatalogEntry, hardware: Hardware, *, fmt: str | None = None,
           installed: bool = False) -> Assessment:
    fmt = fmt or preferred_format(entry, hardware)
    need, size = entry.ram_bytes, entry.size_bytes(fmt)
    total = hardware.total_ram

    def verdict(fit: str, reason: str, disk_ok: bool = True) -> Assessment:
        return Assessment(entry.name, fmt, fit, reason, size, need, installed, disk_ok)

    if not installed and hardware.disk_free is not None and size + DISK_RESERVE > hardware.disk_free:
        return verdict(WILL_NOT_FIT, f"needs {_gb(size)} of disk; {_gb(hardware.disk_free)} free in "
                                     f"{hardware.disk_path}", disk_ok=False)
    if total <= 0:
        return verdict(SLOW, "this computer's memory could not be read, so MemDesk cannot tell")
    gpu = hardware.best_gpu
    on_gpu = bool(gpu and hardware.gpu_offload and gpu.total_bytes and need <= gpu.total_bytes * VRAM_SHARE)
    if on_gpu:
        fit, reason = FITS_WELL, f"runs on the GPU ({gpu.name}, {_gb(gpu.total_bytes)})"  # type: ignore[union-attr]
    elif need > total * RAM_MAX:
        return verdict(WILL_NOT_FIT, f"needs about {_gb(need)} of memory; this computer has {_gb(total)}")
    elif hardware.apple_silicon:
        if need <= total * METAL_SHARE:
            fit, reason = FITS_WELL, f"runs on the Apple GPU ({_gb(need)} of {_gb(total)} unified memory)"
        else:
            fit, reason = SLOW, (f"needs {_gb(need)}, more than the GPU may use of {_gb(total)} unified memory: "
                                 "it will run partly on the CPU")
    elif need > total * RAM_COMFORT:
        fit, reason = SLOW, f"needs {_gb(need)} of {_gb(total)} memory: little is left for other programs"
    elif size > (FEW_CORES_FAST_WEIGHTS if hardware.cpu_count < FEW_CORES else CPU_FAST_WEIGHTS):
        fit, reason = SLOW, (f"runs on the CPU ({hardware.cpu_count} cores): with {_gb(size)} of weights each "
                             "reply is slow to start" if hardware.cpu_count < FEW_CORES else
                             f"runs on the CPU: {_gb(size)} of weights gives a few words a second")
    else:
        fit, reason = FITS_WELL, f"runs on the CPU at reading speed ({_gb(need)} of {_gb(total)} memory)"
    if gpu and not hardware.gpu_offload and not hardware.apple_silicon:
        reason += "; the GPU is not used: this llama.cpp was built without GPU support"
    if fit == FITS_WELL and not on_gpu and need > hardware.available_ram:
        fit, reason = SLOW, reason + f"; only {_gb(hardware.available_ram)} is free now: close other programs"
    return verdict(fit, reason)


def recommend(hardware: Hardware, catalog: Catalog | None = None,
              installed: frozenset[str] | set[str] = frozenset()) -> Recommendation:
    """A verdict per entry and one default: the largest model that fits well (more parameters
    answer better), else the lightest one that runs at all, else none (keep the embedded one)."""
    catalog = catalog or load_catalog()
    assessments = tuple(assess(entry, hardware, installed=entry.name in installed) for entry in catalog.entries)
    by_name = {entry.name: entry for entry in catalog.entries}
    good = [a for a in assessments if a.fit == FITS_WELL]
    if good:
        best = max(good, key=lambda a: by_name[a.name].params_b)  # max keeps the first of equals
        return Recommendation(hardware, assessments, best.name,
                              f"the largest model that fits this computer well: {best.reason}")
    slow = [a for a in assessments if a.fit == SLOW]
    if slow:
        light = min(slow, key=lambda a: a.ram_bytes)
        return Recommendation(hardware, assessments, light.name,
                              f"nothing fits well here; this is the lightest: {light.reason}")
    return Recommendation(hardware, assessments, None,
                          "no catalog model fits this computer; the embedded SmolLM2-135M keeps working")


def _gb(value: int | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / GB:.1f} GB" if value >= 100_000_000 else f"{value / 1_000_000:.0f} MB"


def main() -> int:
    from memdesk.engine.vault.paths import data_dir

    hardware = detect_hardware(data_dir() / "models")
    json.dump(recommend(hardware).to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
