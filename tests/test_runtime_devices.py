"""Which GPU a process uses: the CUDA selection logic as a function of the environment (this
machine has no GPU, so the logic is what is tested; BENCHMARKS.md says where it ran on one)."""
import os
import subprocess
import sys
import textwrap

import pytest

from taichirast import runtime


@pytest.mark.parametrize("env, want", [
    ({}, None),                                                   # not under torchrun
    ({"LOCAL_RANK": ""}, None),
    ({"LOCAL_RANK": "1"}, "1"),                                   # all GPUs visible: the rank's GPU
    ({"LOCAL_RANK": "0"}, "0"),
    ({"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "2,3"}, "3"),    # a subset: the rank-th of it
    ({"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}, "GPU-bb"),
    ({"LOCAL_RANK": "3", "CUDA_VISIBLE_DEVICES": "5"}, None),     # one GPU per process already
    ({"LOCAL_RANK": "0", "CUDA_VISIBLE_DEVICES": ""}, None),      # no GPU
])
def test_local_gpu_visible_devices(env, want):
    assert runtime.local_gpu_visible_devices(env) == want


@pytest.mark.parametrize("env, words", [
    ({"LOCAL_RANK": "x"}, "LOCAL_RANK must be a non-negative integer, got 'x'"),
    ({"LOCAL_RANK": "-1"}, "non-negative"),
    ({"LOCAL_RANK": "2", "CUDA_VISIBLE_DEVICES": "0,1"}, "LOCAL_RANK=2 but CUDA_VISIBLE_DEVICES lists only 2 GPUs"),
])
def test_local_gpu_visible_devices_bad_env(env, words):
    with pytest.raises(ValueError, match=words):
        runtime.local_gpu_visible_devices(env)


def test_local_rank_beyond_the_machines_gpus_is_a_clear_error():
    # e.g. torchrun --nproc_per_node=2 on a 1-GPU machine: rank 1 would see no GPU (NCCL: "no GPUs found")
    with pytest.raises(ValueError, match="LOCAL_RANK=1 but this machine has 1 GPU"):
        runtime.local_gpu_visible_devices({"LOCAL_RANK": "1"}, gpu_count=1)
    assert runtime.local_gpu_visible_devices({"LOCAL_RANK": "1"}, gpu_count=2) == "1"
    assert runtime.local_gpu_visible_devices({"LOCAL_RANK": "1"}, gpu_count=None) == "1"  # count unknown


def test_cuda_index_problem():
    assert runtime.cuda_index_problem("cpu", None) is None
    assert runtime.cuda_index_problem("cuda", None) is None
    assert runtime.cuda_index_problem("cuda", 0) is None
    why = runtime.cuda_index_problem("cuda", 2)
    assert "not cuda:2" in why and "bind_local_gpu()" in why and "LOCAL_RANK" in why


def test_bind_local_gpu_sets_the_visible_device_in_a_fresh_process():
    code = """
        import os, taichirast as tr
        print(tr.runtime.bind_local_gpu(), os.environ["CUDA_VISIBLE_DEVICES"])
    """
    env = dict(os.environ, LOCAL_RANK="1", CUDA_VISIBLE_DEVICES="4,5", TAICHIRAST_ARCH="cpu")
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["cpu", "5"]


@pytest.mark.parametrize("env, visible, prefer, want", [
    ("auto", True, None, "cuda"),    # no data at hand: CUDA when visible
    ("auto", False, None, "cpu"),
    ("auto", True, "cpu", "cpu"),    # CPU tensors on a GPU machine: the CPU backend
    ("auto", False, "cuda", "cuda"),  # CUDA tensors: the CUDA backend
    ("", True, "cpu", "cpu"),        # unset or empty is auto
    ("cpu", True, "cuda", "cpu"),    # a named arch always wins
    ("cuda", False, "cpu", "cuda"),
    ("vulkan", True, "cpu", "vulkan"),
])
def test_auto_arch_follows_the_data(monkeypatch, env, visible, prefer, want):
    monkeypatch.setenv("TAICHIRAST_ARCH", env)
    monkeypatch.setattr(runtime, "_cuda_visible", lambda: visible)
    assert runtime.requested_arch(prefer) == want


def test_cpu_tensors_start_the_cpu_backend_on_a_gpu_machine_under_auto():
    """A script written with CPU tensors, on a machine where CUDA looks visible: TAICHIRAST_ARCH=auto
    starts the CPU backend (the first tensors are CPU ones), so it runs instead of being refused."""
    from gpu_scenes import ALL_PRIMITIVES

    # every render path (each primitive, through render) must let the tensors decide, none may
    # start Taichi first (which would try CUDA: on this machine Taichi would warn and fall back)
    code = textwrap.dedent(ALL_PRIMITIVES) + textwrap.dedent("""
        import warnings
        from taichirast import runtime
        runtime._cuda_visible = lambda: True
        assert runtime.requested_arch() == "cuda"
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*is not available here")  # runtime's fallback warning
            sv = torch.tensor([[[1.0, 1, 1], [7, 1, 1], [1, 7, 1]]])
            fr = tr.rasterize(sv, torch.tensor([[0, 1, 2]]), (8, 8))
            assert runtime.arch() == "cpu" and int((fr.face_id == 0).sum()) > 0
            all_primitives(torch.float32)
        assert runtime.arch() == "cpu"
        print("ok")
    """)
    env = dict(os.environ, TAICHIRAST_ARCH="auto")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("ok"), res.stderr[-2000:]


@pytest.mark.parametrize("arch, want", [("cpu", "cpu"), ("vulkan", "cpu")])
def test_torch_device_is_where_taichi_reads_tensors_in_place(arch, want):
    """CPU tensors for the CPU backend and for Vulkan (which copies them); CUDA's case is in
    tests/test_cuda.py (results on the GPU). A Vulkan request without a usable driver ends on the
    CPU, which also reads CPU tensors."""
    code = "import taichirast as tr; print(tr.runtime.torch_device(), tr.runtime.arch())"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, TAICHIRAST_ARCH=arch))
    assert res.returncode == 0, res.stderr[-2000:]
    device, actual = res.stdout.split()[-2:]
    assert device == want and actual in (arch, "cpu"), res.stdout
