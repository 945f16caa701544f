"""dear.runtime: the allocator setting the CLI applies (large freed blocks are reused)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# Allocate and free a 64 MiB tensor: 12 warm-up rounds (glibc's aligned allocations fragment the
# heap until a few freed blocks sit in it), then count the minor page faults of 7 more.
_PROBE = """
import json, resource, sys, torch
from dear.runtime import allocator_tuned, tune_allocator
on = tune_allocator()
for _ in range(12):
    x = torch.empty(16 * 1024 * 1024).fill_(1.0); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(7):
    x = torch.empty(16 * 1024 * 1024).fill_(1.0); del x
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"on": on, "tuned": allocator_tuned(), "faults": faults}))
"""


def _probe(env_value: str | None) -> dict:
    env = dict(os.environ)
    env.pop("DEAR_MALLOC_TUNING", None)
    if env_value is not None:
        env["DEAR_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_allocator_tuning_reuses_large_blocks_and_can_be_turned_off():
    """With the setting, re-allocating a freed 64 MiB tensor touches no new pages once warm
    (glibc's default maps fresh pages each time: ~16k faults per tensor);
    ``DEAR_MALLOC_TUNING=0`` leaves glibc's default alone."""
    on, off = _probe(None), _probe("0")
    if not on["on"]:
        pytest.skip("this C library has no mallopt")
    assert on["tuned"] and not off["on"] and not off["tuned"]
    pages = 7 * 64 * 1024 * 1024 // 4096
    assert off["faults"] > pages // 2, off
    assert on["faults"] < pages // 20, on


_PIN_PROBE = """
import json, os, threading
from dear.runtime import pin_cores
before = sorted(os.sched_getaffinity(0))
same = pin_cores(len(before) + 5)
after_same = sorted(os.sched_getaffinity(0))
one = pin_cores(1)
seen = {}
t = threading.Thread(target=lambda: seen.update(cores=sorted(os.sched_getaffinity(0))))
t.start(); t.join()
try:
    pin_cores(0)
    bad = None
except ValueError as e:
    bad = str(e)
print(json.dumps({"before": before, "same": same, "after_same": after_same, "one": one,
                  "now": sorted(os.sched_getaffinity(0)), "thread": seen["cores"], "bad": bad}))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_pin_cores_restricts_the_process_and_its_new_threads():
    out = subprocess.run([sys.executable, "-c", _PIN_PROBE], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    assert r["same"] == r["before"] == r["after_same"]  # asking for more than allowed changes nothing
    assert r["one"] == r["now"] == r["thread"] == r["before"][:1]
    assert "at least one core" in r["bad"]


def test_bench_vs_dmclrs_refuses_an_unknown_algorithm_in_one_line(tmp_path):
    from pathlib import Path  # noqa: PLC0415

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_vs_dmclrs.py"
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(script), "--algorithms", "bfs", "nosuch", "--steps", "1",
                           "--no-pin", "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "warning" not in ln.lower()]
    assert lines == [lines[0]] and lines[0].startswith("error: unknown algorithm 'nosuch'"), proc.stderr
    assert not out.exists()


def test_hardware_records_the_cpu_model_and_the_board_shows_it(tmp_path):
    from dear.io import cpu_model, hardware
    from dear.leaderboard.render import _hardware

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 9654 96-Core Processor"
    info.write_text("processor\t: 0\nmodel name\t:\n")  # an empty name is no name
    assert cpu_model(info) != ""
    assert "cpu_model" in hardware()
    hw = {"cpu_model": "AMD EPYC 9654 96-Core Processor", "cpu_count": 2, "torch_threads": 1}
    assert _hardware(hw) == "CPU (AMD EPYC 9654 96-Core Processor), 2 cores, 1 thread"
    assert _hardware({"cpu_count": 2, "torch_threads": 2}) == "CPU, 2 cores, 2 threads"  # older records


def test_hardware_records_the_instruction_set(tmp_path):
    """Two hosts under one bare model name ("AMD EPYC") can differ in flags, and then in kernels."""
    import torch

    from dear.io import cpu_flags_digest, hardware

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\nprocessor\t: 1\nflags\t\t: fpu sse avx2 avx512f\n")
    digest = cpu_flags_digest(info)
    info.write_text("flags\t: avx512f avx2 sse fpu\n")
    assert cpu_flags_digest(info) == digest  # the set, not the order
    info.write_text("flags\t: fpu sse avx2\n")
    assert cpu_flags_digest(info) != digest and len(digest) == 12
    assert cpu_flags_digest(tmp_path / "missing") is None
    hw = hardware()
    assert hw["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and "cpu_flags" in hw


def test_hardware_records_mkls_reproducibility_mode(monkeypatch):
    from dear.io import hardware

    monkeypatch.delenv("MKL_CBWR", raising=False)
    assert hardware()["mkl_cbwr"] is None
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert hardware()["mkl_cbwr"] == "COMPATIBLE"


def test_numerics_compare_device_kinds_not_indices():
    """Rank 0 trains on cuda:0, a single-process resume on cuda: the same numerics."""
    from dear.io import numerics_differences

    here = {"device": "cuda", "gpu": "H200", "torch_threads": 1}
    assert numerics_differences({"device": "cuda:0", "gpu": "H200", "torch_threads": 1}, here) == []
    assert numerics_differences({"device": "cpu", "torch_threads": 2, "cpu_flags": None}, here) == [
        "device 'cpu' -> 'cuda'", "torch_threads 2 -> 1"]


def test_numerics_differences_between_segments_count_unset_values():
    """A run's two segments are recorded by the same code, so an unset MKL mode on one side and
    a set one on the other is a change (the resume note must name it), while against an older
    record that lacks the key it is not."""
    from dear.io import numerics_differences

    before = {"device": "cpu", "mkl_cbwr": None, "torch_threads": 1, "world_size": 1}
    after = {"device": "cpu", "mkl_cbwr": "COMPATIBLE", "torch_threads": 1, "world_size": 2}
    assert numerics_differences(before, after) == []
    assert numerics_differences(before, after, tuple(after), unstated_differ=True) == [
        "mkl_cbwr None -> 'COMPATIBLE'", "world_size 1 -> 2"]
