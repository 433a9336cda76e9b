"""Speed (and memory) of the projections and quantizers on realistic sizes.

    python benchmarks/projections_speed.py                 # every benchmark defined in this file
    python benchmarks/projections_speed.py --only topk     # one of them (repeatable flag)
    python benchmarks/projections_speed.py --only topk --device cuda --json out.json

Each benchmark is a function `bench_<name>(**options) -> list[dict]` (rows of a table); `main()` runs the ones
that exist, passing only the options a function accepts, and prints one markdown table per benchmark.

bench_topk: `robustcompress_nb.projections.project_sparse` (global magnitude top-k by O(n) selection: a sampled
bracket, then `torch.kthvalue` inside it, and a position-order tie rule) against the straightforward reference
(sort all magnitudes, keep the first k) on the ~21.3M Conv2d+Linear weights of a CIFAR ResNet-34. Timings: median of `repeats`
runs after a warm-up. Peak memory: on CPU each method runs once in a fresh subprocess and reports its peak
RSS (VmHWM, reset just before the call) above the RSS before the call (the weights themselves excluded);
on CUDA, the peak of `torch.cuda.max_memory_allocated` above the allocation before the call.
"""
import argparse
import inspect
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time

import torch

try:  # run from a checkout without installing the package
    import robustcompress_nb  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import median_time

# ---------------------------------------------------------------------------------------------- weights
def resnet34_shapes(n_classes: int = 10) -> list[tuple[int, ...]]:
    "Conv2d/Linear weight shapes of the CIFAR ResNet-34 (3x3 stem, stages of 3, 4, 6, 3 basic blocks)."
    shapes, c_in = [(64, 3, 3, 3)], 64
    for c, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            s = stride if b == 0 else 1
            shapes += [(c, c_in, 3, 3), (c, c, 3, 3)]
            if s != 1 or c_in != c:
                shapes.append((c, c_in, 1, 1))  # projection shortcut
            c_in = c
    return shapes + [(n_classes, 512)]


def resnet34_weights(device: str = "cpu", seed: int = 0) -> tuple[list[torch.Tensor], str]:
    "The real CIFAR ResNet-34 weights (`models.get_model`) if that module exists, else tensors of the same shapes."
    torch.manual_seed(seed)
    try:
        from robustcompress_nb.models import compressible_layers, get_model
        model = get_model("resnet34", input_shape=(3, 32, 32), n_classes=10)
        ws = [m.weight.detach().to(device) for m in compressible_layers(model).values()]
        return ws, "robustcompress_nb.models.get_model('resnet34')"
    except ImportError:
        ws = [torch.randn(s, device=device) * math.sqrt(2 / math.prod(s[1:])) for s in resnet34_shapes()]
        return ws, "random tensors with the CIFAR ResNet-34 shapes (robustcompress_nb.models not available)"


# ------------------------------------------------------------------------------------------- reference
def topk_by_sort(tensors, k, *, stable=False):
    "The straightforward reference: sort all magnitudes (descending), keep the first k."
    sizes = [t.numel() for t in tensors]
    flat = torch.cat([t.reshape(-1) for t in tensors])
    idx = torch.sort(flat.abs(), descending=True, stable=stable).indices[:k]
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[idx] = True
    out = torch.where(mask, flat, 0.0)
    return [o.view(t.shape) for o, t in zip(out.split(sizes), tensors)]


def _topk_methods():
    from robustcompress_nb.projections import project_sparse
    return {
        "project_sparse": lambda ws, k: project_sparse(ws, k),
        "project_sparse per_layer_min=64": lambda ws, k: project_sparse(ws, k, per_layer_min=64),
        "torch.sort (reference)": lambda ws, k: topk_by_sort(ws, k),
        "torch.sort stable (reference)": lambda ws, k: topk_by_sort(ws, k, stable=True),
    }


def _status_bytes(key: str) -> int:
    "VmRSS / VmHWM (peak RSS of this process image) from /proc/self/status, in bytes."
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))


def _peak_child(method: str, ratio: float, q):
    "Run one method once in a fresh process; report its peak RSS above the RSS before the call."
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    ws, _ = resnet34_weights("cpu")
    k = int(ratio * sum(w.numel() for w in ws))
    fn = _topk_methods()[method]
    before = _status_bytes("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter to the current RSS (Linux >= 4.0)
    except OSError:
        if _status_bytes("VmHWM") > before + (64 << 20):
            q.put(None)  # the setup peaked higher than the call might: the measure would be unreliable
            return
    out = fn(ws, k)
    q.put(_status_bytes("VmHWM") - before)
    del out


def _peak_memory(method, ratio, device, ws, k):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = _topk_methods()[method](ws, k)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(method, ratio, q))
    p.start(); res = q.get(); p.join()
    return res


def bench_topk(ratios=(0.01, 0.1, 0.5), repeats: int = 3, device: str = "cpu", memory_ratio: float = 0.1) -> list[dict]:
    """Global magnitude top-k on the ResNet-34 weights: project_sparse vs sorting everything.
    Returns one row per (ratio, method): seconds (median), speedup over the fastest sort, peak extra memory (MiB)."""
    ws, source = resnet34_weights(device)
    n = sum(w.numel() for w in ws)
    print(f"[topk] {len(ws)} weight tensors, {n:,} weights ({source}); device {device}, "
          f"{torch.get_num_threads()} threads, repeats {repeats}", flush=True)
    methods, rows = _topk_methods(), []
    for ratio in ratios:
        k = int(ratio * n)
        ours, ref = methods["project_sparse"](ws, k), methods["torch.sort stable (reference)"](ws, k)
        same = all(torch.equal(a, b) for a, b in zip(ours, ref))  # same tie rule: position order
        assert same, "project_sparse disagrees with the stable-sort reference"
        del ours, ref
        times = {name: median_time(lambda f=f: f(ws, k), repeats, device) for name, f in methods.items()}
        t_sort = min(t for name, t in times.items() if "reference" in name)
        for name, t in times.items():
            row = dict(ratio=ratio, k=k, method=name, seconds=round(t, 4), speedup_vs_sort=round(t_sort / t, 2),
                       equal_to_stable_sort=same if name == "project_sparse" else None)
            if ratio == memory_ratio:
                peak = _peak_memory(name, ratio, device, ws, k)
                row["peak_extra_MiB"] = None if peak is None else round(peak / 2**20, 1)
            rows.append(row)
            print(f"  ratio {ratio:<5} {name:<34} {t:8.3f} s  x{t_sort / t:5.2f}"
                  + (f"  peak +{row['peak_extra_MiB']} MiB" if "peak_extra_MiB" in row else ""), flush=True)
    return rows


# -------------------------------------------------------------------------------------------- quantize
# bench_quantize: `robustcompress_nb.quantize.quantize_kmeans` ('lloyd': sorted values + binary search among
# midpoints + prefix sums, O(N) memory; 'optimal': exact 1-D k-means, numba's Lagrangian solver where numba is
# installed, else the layered torch DP) against the straightforward reference, ATMC's
# dense Lloyd (utee/kmeans.py: an N x K distance matrix, argmin, an N x K one-hot, centres = (X*one_hot).sum /
# count) restated below, in float32 like ATMC. Same Forgy start (`quantize._forgy`, same seed), same number of
# updates (max_iter) and the same stopping rule (assignment unchanged), empty cells keep their centre in both.
# Workload: one 512x512x3x3 float32 tensor (2,359,296 weights, the size of the widest conv of ResNet-34),
# torch.randn * 0.02 from a seeded generator (no zeros, so the fixed zero plays no role). Every (method, bits)
# runs in a fresh subprocess (CPU): peak memory = VmHWM (reset just before the call) minus VmRSS before the
# call, i.e. the extra memory of the call including its outputs, the input tensor excluded; the time of the same
# call (median of `repeats` calls for the fast Lloyd, one call for the slow ones). On CUDA: in-process,
# torch.cuda.max_memory_allocated above the allocation before the call. MSE: mean squared error of the result.

QUANT_SHAPE = (512, 512, 3, 3)


def quant_weights(shape=QUANT_SHAPE, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    "The benchmark tensor: randn(shape) * 0.02 from a seeded generator, float32."
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 0.02).to(device)


def lloyd_dense_atmc(x: torch.Tensor, init: torch.Tensor, max_iter: int = 20):
    """ATMC's dense Lloyd (utee/kmeans.py, lloyd_fixed_nnz), restated: N x K distances, argmin, N x K one-hot.
    Centres kept sorted (ties go to the lower centre, as in ours). Returns (centres (K,), codes (N,))."""
    X = x.reshape(-1, 1).float()
    c = torch.sort(init.float()).values
    one_hot = torch.zeros(X.shape[0], c.numel(), device=X.device)
    prev = None
    for it in range(max_iter + 1):
        a = ((X - c[None, :]) ** 2).argmin(1)  # the N x K distance matrix
        if it == max_iter or (prev is not None and torch.equal(a, prev)):
            break
        one_hot.zero_()
        one_hot.scatter_(1, a[:, None], 1)
        xp, cnt = (X * one_hot).sum(0), one_hot.sum(0)
        c = torch.sort(torch.where(cnt > 0, xp / cnt.clamp(min=1), c)).values
        prev = a
    return c, a


QUANT_METHODS = {
    "lloyd (sorted, ours)": "lloyd",
    "optimal (exact, numba Lagrangian, ours)": "optimal",
    "optimal (exact, layered torch DP, ours)": "optimal-torch",
    "dense Lloyd (ATMC reference)": "reference",
}
# the layered torch DP takes minutes at 8 bits: measured only when asked for (bench_quantize(methods=...))
DEFAULT_QUANT_METHODS = tuple(m for m in QUANT_METHODS if QUANT_METHODS[m] != "optimal-torch")


def _quantize_run(method: str, t: torch.Tensor, bits: int, max_iter: int, seed: int):
    "One quantization of t; returns the dequantized tensor."
    from robustcompress_nb.quantize import _forgy, dequantize, quantize_kmeans
    if method == "reference":
        nz = t.reshape(-1)[t.reshape(-1) != 0]
        c, a = lloyd_dense_atmc(nz, _forgy(nz, 2 ** bits, seed), max_iter)
        q = torch.zeros_like(t).reshape(-1)
        q[t.reshape(-1) != 0] = c[a]
        return q.view(t.shape)
    if method == "optimal-torch":
        return dequantize(*quantize_kmeans(t, bits, method="optimal", backend="torch"))
    return dequantize(*quantize_kmeans(t, bits, method=method, max_iter=max_iter, seed=seed))


def _quantize_measure(method, bits, shape, seed, max_iter, repeats, device, q=None):
    "Time and peak extra memory of one (method, bits); in a fresh process on CPU (q: result queue)."
    if q is not None:
        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    t = quant_weights(shape, seed, device)
    t0 = time.perf_counter()
    _quantize_run(method, t.reshape(-1)[:4096].clone(), min(bits, 4), 2, seed)  # warm-up (kernels, allocator,
    sync()                                                                      # numba's JIT compilation)
    first_call = time.perf_counter() - t0
    if str(device).startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    else:
        base = _status_bytes("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak-RSS counter (Linux >= 4.0)
            reset = True
        except OSError:
            reset = False
    times = []
    for r in range(repeats):
        t0 = time.perf_counter(); out = _quantize_run(method, t, bits, max_iter, seed); sync()
        times.append(time.perf_counter() - t0)
        if r == 0:
            if str(device).startswith("cuda"):
                peak = torch.cuda.max_memory_allocated() - base
            else:
                peak = _status_bytes("VmHWM") - base if reset else None
            mse = float(((out.double() - t.double()) ** 2).mean())
            levels = int(torch.unique(out).numel())
        del out
    res = dict(seconds=statistics.median(times), peak=peak, mse=mse, levels=levels, first_call=first_call)
    if q is not None:
        q.put(res)
    return res


def bench_quantize(bits=(4, 8), repeats: int = 3, device: str = "cpu", shape=QUANT_SHAPE, seed: int = 0,
                   max_iter: int = 20, methods=DEFAULT_QUANT_METHODS) -> list[dict]:
    """Per-tensor k-means quantization of one 2.36M-weight tensor: ours (Lloyd, exact DP) vs ATMC's dense Lloyd.
    Returns one row per (bits, method): seconds, speedup over the reference, peak extra memory (MiB and x the
    tensor's size), MSE and MSE relative to the reference. The fast Lloyd is timed `repeats` times (median);
    the exact solvers and the reference once. `first_call_s`: the warm-up call on 4096 values before the timed
    ones (it includes numba's JIT compilation for the numba solver; excluded from `seconds`). The layered torch DP
    ('optimal (exact, layered torch DP, ours)') takes minutes at 8 bits and is left out unless `methods` names it."""
    n = math.prod(shape)
    tensor_bytes = 4 * n
    print(f"[quantize] tensor {tuple(shape)} = {n:,} float32 weights (randn * 0.02, seed {seed}); device {device}, "
          f"{os.environ.get('BENCH_THREADS', torch.get_num_threads())} threads, max_iter {max_iter}", flush=True)
    rows = []
    for b in bits:
        res = {}
        for name in methods:
            method = QUANT_METHODS[name]
            reps = repeats if method == "lloyd" else 1
            if str(device).startswith("cuda"):
                r = _quantize_measure(method, b, shape, seed, max_iter, reps, device)
            else:
                ctx = mp.get_context("spawn")
                q = ctx.Queue()
                p = ctx.Process(target=_quantize_measure, args=(method, b, shape, seed, max_iter, reps, device, q))
                p.start()
                while True:  # wait for the result; fail loudly if the child died without one
                    try:
                        r = q.get(timeout=5); break
                    except Exception:
                        if not p.is_alive():
                            raise RuntimeError(f"benchmark child for {name} at {b} bits died (exit code {p.exitcode})")
                p.join()
            res[name] = r
            print(f"  {b} bits  {name:<30} {r['seconds']:9.3f} s  mse {r['mse']:.4e}  levels {r['levels']}"
                  + ("" if r["peak"] is None else f"  peak +{r['peak'] / 2**20:.1f} MiB")
                  + f"  (first call {r['first_call']:.2f} s)", flush=True)
        ref = res.get("dense Lloyd (ATMC reference)")
        lloyd = res.get("lloyd (sorted, ours)")
        for name, r in res.items():
            rows.append(dict(
                bits=b, method=name, seconds=round(r["seconds"], 4),
                speedup_vs_reference=None if ref is None else round(ref["seconds"] / r["seconds"], 1),
                x_lloyd_time=None if lloyd is None else round(r["seconds"] / lloyd["seconds"], 1),
                first_call_s=round(r["first_call"], 2),
                peak_extra_MiB=None if r["peak"] is None else round(r["peak"] / 2**20, 1),
                peak_x_tensor=None if r["peak"] is None else round(r["peak"] / tensor_bytes, 2),
                mse=float(f"{r['mse']:.5e}"),
                mse_vs_reference=None if ref is None else round(r["mse"] / ref["mse"], 4),
                levels=r["levels"]))
    return rows


# ------------------------------------------------------------------------------------------------- main
BENCHES = ("topk", "quantize")  # bench_<name> functions; one missing is skipped
DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "projections_speed.json")


def _markdown(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(c for r in rows for c in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", choices=BENCHES, help="run only this benchmark (repeatable)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--json", default=DEFAULT_JSON,
                    help="write the rows as JSON here (default benchmarks/results/projections_speed.json; the results "
                         "of benchmarks not run now are kept from an existing file); '' to skip")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["BENCH_THREADS"] = str(args.threads)
    options = dict(repeats=args.repeats, device=args.device)
    results = {}
    for name in args.only or BENCHES:
        fn = globals().get(f"bench_{name}")
        if fn is None:
            print(f"bench_{name}: not defined in this file yet, skipped")
            continue
        accepted = inspect.signature(fn).parameters
        results[name] = fn(**{k: v for k, v in options.items() if k in accepted})
        print(f"\n### {name}\n\n{_markdown(results[name])}\n", flush=True)
    if args.json:
        previous = {}
        if os.path.exists(args.json):
            with open(args.json) as f:
                previous = json.load(f).get("runs", {})
        env = dict(torch=torch.__version__, threads=torch.get_num_threads(), device=args.device)
        runs = {**previous, **{name: dict(env, rows=rows) for name, rows in results.items()}}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(dict(runs=runs), f, indent=1)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
