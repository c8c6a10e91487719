import os

os.environ.setdefault("TAICHIRAST_ARCH", "cpu")
