"numba is optional: robustcompress_nb.quantize imports and its exact k-means works without it (torch DP fallback)."
import subprocess, sys

CODE = r'''
import sys
sys.modules["numba"] = None                      # any "import numba" now raises ImportError
import torch
from robustcompress_nb import quantize as Q
t = torch.randn(500, generator=torch.Generator().manual_seed(0))
codes, cb = Q.quantize_kmeans(t, 3, method="optimal")
ref = Q.quantize_kmeans(t, 3, method="optimal", backend="torch")
assert torch.equal(codes, ref[0]) and torch.equal(cb, ref[1])
try:
    Q.quantize_kmeans(t, 3, method="optimal", backend="numba")
    raise SystemExit("backend='numba' without numba should fail")
except ImportError as e:
    assert "pip install numba" in str(e)
assert sys.modules["numba"] is None              # nothing imported numba behind our back
print("ok")
'''


def test_quantize_without_numba():
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
