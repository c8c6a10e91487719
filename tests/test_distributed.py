"""torch.distributed with taichirast: one DDP step in 2 CPU processes (gloo), each with its own
Taichi runtime, gives the parameters of one process stepping on the concatenated batch."""
import os
import subprocess
import sys

import pytest
import torch

from taichirast import distributed

HERE = os.path.dirname(os.path.abspath(__file__))
# 2 CPU processes (gloo), whatever backend the suite runs on: on a 1-GPU machine two ranks cannot have a GPU each
ENV = dict(os.environ, TAICHIRAST_ARCH="cpu", OMP_NUM_THREADS="1")
for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
    ENV.pop(k, None)


def _step(out, nproc):
    cmd = [sys.executable, os.path.join(HERE, "ddp_step.py"), str(out)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *cmd[1:]]
    res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    return torch.load(out)


def test_one_ddp_step_equals_one_process_on_the_whole_batch(tmp_path):
    one = _step(tmp_path / "one.pt", 1)
    two = _step(tmp_path / "two.pt", 2)
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert two["arch"] == one["arch"]
    for name, p in one["params"].items():
        q = two["params"][name]
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6), (name, (p - q).abs().max())
    # and the step did something: the parameters moved from their initial values
    sys.path.insert(0, HERE)
    from ddp_step import Net, data

    v, f, cam, _, _ = data()
    init = Net(v, f, cam).state_dict()
    assert max(float((one["params"][k] - init[k].cpu()).abs().max()) for k in init) > 1e-4


def test_shard_and_single_process_context(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    ctx = distributed.init()
    assert (ctx.rank, ctx.world_size, ctx.distributed) == (0, 1, False)
    assert distributed.shard(range(4), ctx) == [0, 1, 2, 3]
    two = distributed.Context(1, 2, "cpu", True)
    assert distributed.shard(range(6), two) == [1, 3, 5]
    with pytest.raises(ValueError, match="a global batch of 5 does not split evenly over 2 processes"):
        distributed.shard(range(5), two)



def test_cpu_device_binds_no_gpu(monkeypatch):
    """A script with CPU tensors (the demos) asks for the CPU: no GPU is bound even where torchrun set
    LOCAL_RANK and CUDA is requested, and the device is 'cpu'."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setenv("TAICHIRAST_ARCH", "cuda")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    ctx = distributed.init(device="cpu")
    assert ctx.device == "cpu" and "CUDA_VISIBLE_DEVICES" not in os.environ
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or None, got 'gpu'"):
        distributed.init(device="gpu")


def test_segmentation_demo_under_torchrun_matches_one_process(tmp_path):
    """demos/mesh_segmentation.py --smoke under torchrun (2 processes, DDP) trains to the same
    held-out accuracy as one process on the whole batches."""
    import json

    demo = os.path.join(os.path.dirname(HERE), "demos", "mesh_segmentation.py")
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        cmd = [demo, "--smoke", "--quiet", "--out", str(out)]
        cmd = [sys.executable, *cmd] if n == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     f"--nproc_per_node={n}", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
        runs[n] = json.loads((out / "metrics.json").read_text())
    assert runs[2]["accuracy"] == pytest.approx(runs[1]["accuracy"], abs=0.02)
    assert runs[2]["train_accuracy"] == pytest.approx(runs[1]["train_accuracy"], abs=0.02)
    assert runs[1]["accuracy"] > runs[1]["chance"] + 0.2  # it learned something


def test_single_image_3d_under_torchrun(tmp_path):
    """demos/single_image_3d.py --smoke under torchrun: 2 processes (DDP, 2 of the 4 shapes of every
    batch each), rank 0 alone writes the checkpoint and the metrics, which are close to one process's
    on the whole batches. Not equal: the encoder's BatchNorm normalises each process's share with
    its own statistics (as in any DDP job without SyncBatchNorm, which needs GPUs)."""
    import json

    demo = os.path.join(os.path.dirname(HERE), "demos", "single_image_3d.py")
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        cmd = [demo, "--smoke", "--batch", "4", "--quiet", "--out", str(out)]
        cmd = [sys.executable, *cmd] if n == 1 else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     f"--nproc_per_node={n}", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
        assert res.returncode == 0, res.stderr[-4000:]
        assert res.stdout.count("held-out shapes:") == 1, res.stdout  # one table, from rank 0
        assert (out / "checkpoint.pt").exists() and (out / "reconstructions.png").exists()
        runs[n] = json.loads((out / "metrics.json").read_text())["table"]["model"]["mean"]
    # seen: IoU 0.432 / 0.434, chamfer 0.0704 / 0.0711, F@0.1 0.315 / 0.307 (1 / 2 processes)
    assert runs[2] == pytest.approx(runs[1], rel=0.05, abs=0.02)
    odd = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", demo,
                          "--smoke", "--quiet", "--out", str(tmp_path / "odd")], capture_output=True, text=True,
                         env=ENV, timeout=600)  # --smoke's batch of 5 does not split over 2 processes
    assert odd.returncode != 0 and "--batch 5 must be a multiple of the 2 processes" in odd.stderr, odd.stderr[-2000:]
