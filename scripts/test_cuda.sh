#!/usr/bin/env bash
# The test suite on Taichi's CUDA backend with CUDA tensors.
#
#     bash scripts/test_cuda.sh                 # whole suite (pytest-xdist: 8 workers if installed)
#     bash scripts/test_cuda.sh -k soft -x      # extra arguments go to pytest
#
# TAICHIRAST_ARCH=cuda: Taichi's CUDA backend reads CUDA tensors in place and refuses CPU ones, so
# tests/conftest.py makes the suite's tensors on the GPU (torch.set_default_device("cuda"), and
# torch.from_numpy / torch.Generator / Tensor.numpy adapted). Fails at once, saying why, when torch
# or Taichi sees no CUDA GPU (Taichi would silently fall back to the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
export TAICHIRAST_ARCH=cuda
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'test_cuda.sh: torch sees no CUDA GPU')"
python -c "import sys, taichirast as tr; a = tr.ensure_init(); sys.exit(0 if a == 'cuda' else 'test_cuda.sh: Taichi started on ' + a + ', not cuda')"
workers=()
if python -c "import xdist" 2>/dev/null; then workers=(-n "${TEST_CUDA_WORKERS:-8}"); fi
exec python -m pytest "${workers[@]}" "$@" tests
