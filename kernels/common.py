"""Small ``ti.func`` helpers shared by the rasterizers (float type follows the inputs): geometry, face
entries, and the CPU workers' schedule."""
import taichi as ti

# Loop iterations between two CPU workers of a kernel (>= the largest task Taichi 1.7's CPU backend
# makes of consecutive iterations of a parallel loop, 1024, whatever ``loop_config(block_dim=...)``
# says; measured: a 2-iteration loop of two equal halves took the time of both). A kernel that
# wants P workers, one per thread, loops over ``P * CHUNK_STRIDE`` iterations and works only in
# those with ``it % CHUNK_STRIDE == 0`` (worker ``it // CHUNK_STRIDE``): each is a task of its own.
CHUNK_STRIDE = 1024


@ti.func
def edge_function(ax, ay, bx, by, px, py):
    """Twice the signed area of (a, b, p): ``(a - p) x (b - p)``; with y down, > 0 is clockwise on screen.

    For a triangle (s0, s1, s2) the barycentric numerators at p are
    ``E0 = edge(s1, s2, p)``, ``E1 = edge(s2, s0, p)``, ``E2 = edge(s0, s1, p)`` and
    ``E0 + E1 + E2 = edge(s0, s1, s2)`` (twice the signed screen area).
    """
    return (ax - px) * (by - py) - (bx - px) * (ay - py)


@ti.func
def point_segment_dist2(px, py, ax, ay, bx, by):
    """Squared distance from p to segment [a, b] and the clamped parameter t of the nearest point a + t (b - a)."""
    ex = bx - ax
    ey = by - ay
    rx = px - ax
    ry = py - ay
    ee = ex * ex + ey * ey
    t = rx * 0  # zero of the input's float type
    if ee > 0:
        t = ti.min(ti.max((rx * ex + ry * ey) / ee, 0), 1)
    dx = rx - t * ex
    dy = ry - t * ey
    return dx * dx + dy * dy, t


@ti.func
def entry_face(tab: ti.template(), e):
    """``(b, f)``: image and face of face entry ``e``. ``tab (B, 3)`` int32 rows are (first face,
    count, first entry) per image: image b owns entries ``tab[b, 2] .. tab[b, 2] + tab[b, 1] - 1``,
    entry e of it being face ``tab[b, 0] + e - tab[b, 2]`` (taichirast/packed.py, ``Entries``).
    Binary search for the last image whose first entry is <= e (empty images share their successor's
    start and lose to it)."""
    lo = 0
    hi = tab.shape[0] - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if tab[mid, 2] <= e:
            lo = mid
        else:
            hi = mid - 1
    return lo, tab[lo, 0] + e - tab[lo, 2]


# Image rows in a block of the CPU workers' row schedule (``worker_row``).
WORKER_ROWS = 8


@ti.func
def worker_rows(it, NW, n_rows):
    """How many of ``n_rows`` image rows the CPU worker of loop iteration ``it`` gets (a worker
    ``it // CHUNK_STRIDE`` of NW when ``it % CHUNK_STRIDE == 0``; see ``worker_row``)."""
    wk = it // CHUNK_STRIDE
    nb = (n_rows + WORKER_ROWS - 1) // WORKER_ROWS
    mine = (nb - wk + NW - 1) // NW  # blocks wk, wk + NW, ...
    last = wk + (mine - 1) * NW  # its last block, which may be short
    return ti.select(mine > 0, (mine - 1) * WORKER_ROWS + ti.min(WORKER_ROWS, n_rows - last * WORKER_ROWS), 0)


@ti.func
def worker_row(it, j, NW):
    """The j-th image row of the CPU worker of loop iteration ``it``: blocks of WORKER_ROWS rows dealt
    in turn (block k to worker k % NW), a fixed schedule, so sums made along it are the same in
    every run, and interleaved, so each worker gets rows of every part of the image."""
    return ((it // CHUNK_STRIDE) + (j // WORKER_ROWS) * NW) * WORKER_ROWS + j % WORKER_ROWS
