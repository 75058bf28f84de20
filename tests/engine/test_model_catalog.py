"""The shipped model catalog and the hardware verdicts built on it."""
from __future__ import annotations

import copy
import json
from importlib.resources import files
from pathlib import Path

import pytest

from memdesk.engine.errors import InvalidInputError, NotFoundError
from memdesk.engine.llm.catalog import GB, GGUF, MLX, load_catalog, load_catalog_file, parse_catalog
from memdesk.engine.llm.hardware import (
    FITS_WELL,
    SLOW,
    WILL_NOT_FIT,
    Gpu,
    Hardware,
    assess,
    detect_hardware,
    parse_nvidia_smi,
    recommend,
)

RAW = json.loads(files("memdesk.resources").joinpath("models/catalog.json").read_text(encoding="utf-8"))


def machine(ram_gb: float, *, free_gb: float | None = None, cores: int = 8, apple: bool = False,
            gpu_gb: float | None = None, offload: bool | None = None, disk_gb: float = 500) -> Hardware:
    gpus = (Gpu("NVIDIA GeForce RTX 4090", int(gpu_gb * GB), int(gpu_gb * GB)),) if gpu_gb else ()
    return Hardware("Darwin" if apple else "Linux", "arm64" if apple else "x86_64", cores, int(ram_gb * GB),
                    int((ram_gb * 0.8 if free_gb is None else free_gb) * GB), apple, gpus, offload, "/models",
                    int(disk_gb * GB))


# ------------------------------------------------------------------ the catalog
def test_the_shipped_catalog_covers_small_to_medium_models_of_several_families():
    catalog = load_catalog()
    assert catalog.version and len(catalog.entries) >= 8
    assert len({e.family for e in catalog.entries}) >= 5
    sizes = [e.params_b for e in catalog.entries]
    assert min(sizes) <= 0.6 and max(sizes) >= 7.5
    assert any("approximate" in note for note in catalog.notes)
    for entry in catalog.entries:
        assert entry.gguf.file.endswith(".gguf") and "/" in entry.gguf.repo
        assert entry.gguf.sha256 is None  # never claimed without checking: the Hub's is used
        assert entry.licence and entry.licence_url.startswith("https://") and entry.good_for
        # Memory to chat is more than the weights (KV cache, runtime).
        assert entry.ram_bytes > entry.gguf.size_bytes and entry.context_length >= 8192
        if entry.mlx:
            assert entry.mlx.repo.startswith("mlx-community/") and entry.mlx.repo.endswith("-4bit")
            assert entry.formats == (GGUF, MLX) and entry.size_bytes(MLX) == entry.mlx.size_bytes


def test_a_mistyped_name_gets_suggestions():
    with pytest.raises(NotFoundError, match="Did you mean qwen2.5-1.5b-instruct") as err:
        load_catalog().get("qwen2.5-1.5b-instruc")
    assert err.value.exit_code == 5
    assert load_catalog().get(" Qwen2.5-1.5B-Instruct ").name == "qwen2.5-1.5b-instruct"


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format=2), "format"),
    (lambda d: d["models"][0].pop("licence"), "needs a non-empty 'licence'"),
    (lambda d: d["models"][0]["gguf"].update(repo="no-slash"), "not owner/name"),
    (lambda d: d["models"][0]["gguf"].update(file="../evil.gguf"), "relative path ending in .gguf"),
    (lambda d: d["models"][0]["gguf"].update(sha256="ABC"), "64 lower-case hex"),
    (lambda d: d["models"][0].update(ram_gb=-1), "positive 'ram_gb'"),
    (lambda d: d["models"][0].update(name="Has Spaces"), "lower-case letters"),
    (lambda d: d["models"].append(copy.deepcopy(d["models"][0])), "more than once"),
])
def test_a_broken_catalog_names_the_entry_and_the_mistake(change, message):
    data = copy.deepcopy(RAW)
    change(data)
    with pytest.raises(InvalidInputError, match=message):
        parse_catalog(data, source="test.json")


def test_a_catalog_file_that_is_not_json_is_refused_clearly(tmp_path: Path):
    bad = tmp_path / "catalog.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="Cannot read the model catalog"):
        load_catalog_file(bad)


# ------------------------------------------------------------------ hardware
def test_nvidia_smi_output_is_parsed_including_unknown_memory():
    gpus = parse_nvidia_smi("NVIDIA H200, 143771, 143000\nNVIDIA GeForce RTX 3050 Laptop GPU, [N/A], [N/A]\n")
    assert gpus[0] == Gpu("NVIDIA H200", 143771 * 1024 * 1024, 143000 * 1024 * 1024)
    assert gpus[1].name == "NVIDIA GeForce RTX 3050 Laptop GPU" and gpus[1].total_bytes is None


def test_this_machine_is_detected(tmp_path: Path):
    hw = detect_hardware(tmp_path / "not-yet" / "models")
    assert hw.total_ram > 0 and 0 < hw.available_ram <= hw.total_ram and hw.cpu_count >= 1
    assert hw.disk_free and hw.disk_free > 0 and hw.disk_path == str(tmp_path)  # the nearest folder that exists
    assert isinstance(hw.apple_silicon, bool) and hw.summary().startswith(f"{hw.total_ram / GB:.1f} GB RAM")


def test_a_cpu_laptop_gets_small_models_well_and_7b_slowly():
    catalog = load_catalog()
    laptop = machine(16)
    assert assess(catalog.get("qwen2.5-1.5b-instruct"), laptop).fit == FITS_WELL
    slow = assess(catalog.get("qwen2.5-7b-instruct"), laptop)
    assert slow.fit == SLOW and "few words a second" in slow.reason and slow.fmt == GGUF
    # Two cores: reading the prompt is the bottleneck, so even 2 GB of weights is slow.
    assert assess(catalog.get("llama-3.2-3b-instruct"), machine(16, cores=2)).fit == SLOW
    tiny = machine(4)
    verdict = assess(catalog.get("llama-3.1-8b-instruct"), tiny)
    assert verdict.fit == WILL_NOT_FIT and "6.0 GB of memory; this computer has 4.0 GB" in verdict.reason


def test_apple_silicon_prefers_mlx_and_runs_7b_well():
    catalog = load_catalog()
    mac = machine(16, apple=True)
    verdict = assess(catalog.get("qwen2.5-7b-instruct"), mac)
    assert verdict.fit == FITS_WELL and verdict.fmt == MLX and "Apple GPU" in verdict.reason
    assert assess(catalog.get("smollm2-1.7b-instruct"), mac).fmt == GGUF  # no MLX version in the catalog
    assert assess(catalog.get("llama-3.1-8b-instruct"), machine(8, apple=True)).fit == SLOW


def test_an_nvidia_gpu_counts_only_when_llama_cpp_can_use_it():
    entry = load_catalog().get("llama-3.1-8b-instruct")
    on_gpu = assess(entry, machine(16, gpu_gb=24, offload=True, cores=4))
    assert on_gpu.fit == FITS_WELL and "runs on the GPU (NVIDIA GeForce RTX 4090, 24.0 GB)" in on_gpu.reason
    cpu_build = assess(entry, machine(16, gpu_gb=24, offload=False, cores=4))
    assert cpu_build.fit == SLOW and "built without GPU support" in cpu_build.reason


def test_free_memory_and_free_disk_are_taken_into_account():
    entry = load_catalog().get("qwen2.5-1.5b-instruct")
    busy = assess(entry, machine(16, free_gb=1.0))
    assert busy.fit == SLOW and "close other programs" in busy.reason
    full = assess(entry, machine(16, disk_gb=1.0))
    assert full.fit == WILL_NOT_FIT and "of disk" in full.reason and not full.disk_ok
    assert assess(entry, machine(16, disk_gb=1.0), installed=True).fit == FITS_WELL  # already on disk


def test_one_default_is_recommended_for_each_kind_of_machine():
    assert recommend(machine(16, apple=True)).default == "llama-3.1-8b-instruct"  # largest that fits well
    assert recommend(machine(32, gpu_gb=24, offload=True)).default == "llama-3.1-8b-instruct"
    assert recommend(machine(16, cores=8)).default == "phi-3.5-mini-instruct"  # CPU: up to ~2.5 GB of weights
    assert recommend(machine(8, cores=2)).default == "smollm2-1.7b-instruct"
    starved = recommend(machine(1.6))
    assert starved.default == "qwen2.5-0.5b-instruct" and "nothing fits well" in starved.why
    nothing = recommend(machine(0.5))
    assert nothing.default is None and "embedded SmolLM2-135M keeps working" in nothing.why
    data = recommend(machine(16)).to_dict()
    assert len(data["models"]) == len(load_catalog().entries) and data["summary"].startswith("16.0 GB RAM")
