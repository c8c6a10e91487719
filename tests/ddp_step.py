"""One training step of a small network whose loss goes through taichirast's soft rasterizer,
single-process or under ``torchrun`` with DistributedDataParallel (tests/test_distributed.py).

    python tests/ddp_step.py OUT.pt                              # one process, the whole batch
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_step.py OUT.pt

Rank 0 (or the single process) saves the parameters after the step and the loss to OUT.pt.
"""
import sys

import torch
from torch import nn

import taichirast as tr
from taichirast import distributed, meshes

BATCH = 4  # global batch: shared by the processes


def data():
    """Codes and target silhouettes of BATCH random ellipsoids (the same in every process)."""
    g = torch.Generator().manual_seed(0)
    v, f = meshes.icosphere(2)
    v, f = torch.from_numpy(v), torch.from_numpy(f)
    scales = 0.6 + 0.5 * torch.rand(BATCH, 1, 3, generator=g)
    cam = tr.PerspectiveCamera.look_at([0.0, 0.0, 3.0], fov_y=45.0, image_size=(32, 32), near=0.1, far=10.0)
    with torch.no_grad():
        targets = tr.render(v * scales, f, cam, mode="hard")[..., 3]
    codes = torch.randn(BATCH, 8, generator=g)
    return v, f, cam, codes, targets


class Net(nn.Module):
    """Per-vertex offsets of a template sphere from a code; rendered as soft silhouettes."""

    def __init__(self, template, faces, cam):
        super().__init__()
        torch.manual_seed(1)
        self.mlp = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, template.shape[0] * 3))
        self.template, self.faces, self.cam = template, faces, cam

    def forward(self, codes):
        offsets = 0.1 * self.mlp(codes).view(codes.shape[0], -1, 3)
        verts = self.template + offsets
        return tr.render(verts, self.faces, self.cam, mode="soft", sigma=1e-3)[..., 3]


def main(out):
    ctx = distributed.init()
    v, f, cam, codes, targets = data()
    net = Net(v, f, cam)
    model = nn.parallel.DistributedDataParallel(net) if ctx.distributed else net
    mine = distributed.shard(range(BATCH), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = ((model(codes[mine]) - targets[mine]) ** 2).mean()  # mean over this process's samples
    opt.zero_grad()
    loss.backward()  # DDP averages the gradients over the processes
    opt.step()
    if distributed.is_main(ctx):
        torch.save({"params": {k: p.detach().clone() for k, p in net.state_dict().items()},
                    "world_size": ctx.world_size, "arch": tr.runtime.arch()}, out)
    distributed.finish(ctx)


if __name__ == "__main__":
    main(sys.argv[1])
