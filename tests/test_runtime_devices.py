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
