"""Batch-1 CPU latency of deployed models, in PyTorch and in ONNX Runtime side by side, 1 thread: dense vs
CSTAR (Tucker-2 at about 10% of the dense MACs) vs sparse (10% of the weights) vs 8-bit (real int8 in ONNX
Runtime), on small_cnn (8x8 digits), cifar_small (the package's small CIFAR-10 model) and resnet18 (32x32 CIFAR-10
inputs).

    python benchmarks/deploy_latency.py                 # the three models
    python benchmarks/deploy_latency.py --quick         # fewer timed runs (a smoke test of the script)

The models: weights from the seeded initialization (latency does not depend on the values; accuracy is not
measured here). CSTAR is the package's CSTAR structure: `solver.lowrank_transform(Tucker2(k))`, the global
Tucker-2/SVD rank allocation under a parameter budget k, with k bisected until the model's MACs
(`size.count_macs`) are about `--macs` of the dense ones. Sparse: the 10% largest weights of every layer kept,
the rest zero (plain dense kernels in both engines: no speed-up is expected, and none is claimed). 8-bit: every
weight on the symmetric 8-bit grid (`quantize.quantize_uniform`); PyTorch runs those float weights, ONNX Runtime
runs the real int8 graph of `deploy.quantize_onnx` (static, QDQ, calibrated on 64 random inputs).

What is timed: `size.cpu_latency` (PyTorch, eval mode, inference mode) and `deploy.onnx_latency` (ONNX
Runtime, all graph optimizations) with one thread each, `--runs` calls after warm-up; the two engines are
interleaved `--rounds` times and the table shows the median over rounds of the per-round medians, and the
fastest single call (`min`: the least disturbed by other processes). The load average of the machine is
recorded: on a shared machine a long call (the dense model) is preempted more often than a short one, so the
median speed-ups grow with the load; the `min` speed-ups are the steadier figure.

Prints a table and writes benchmarks/results/deploy_latency.json and .csv.
"""
import argparse
import csv
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from robustcompress_nb.constraints import Tucker2
from robustcompress_nb.deploy import export_onnx, quantize_onnx, onnx_latency, onnx_predict
from robustcompress_nb.layers import clone_model
from robustcompress_nb.models import get_model, count_weights, compressible_layers
from robustcompress_nb.quantize import quantize_uniform
from robustcompress_nb.size import count_macs, cpu_latency
from robustcompress_nb.solver import lowrank_transform

RESULTS = Path(__file__).resolve().parent / 'results'
MODELS = {'small_cnn': dict(input_shape=(1, 8, 8)), 'cifar_small': dict(input_shape=(3, 32, 32)), 'resnet18': dict(input_shape=(3, 32, 32))}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    p.add_argument('--macs', type=float, default=0.10, help='target MACs of the Tucker-2 model, as a fraction of dense')
    p.add_argument('--runs', type=int, default=100, help='timed calls per measurement')
    p.add_argument('--rounds', type=int, default=3, help='interleaved rounds (torch, ORT) per model')
    p.add_argument('--tucker-k', nargs='+', default=[], metavar='MODEL=K',
                   help='skip the bisection: the parameter budget k of the Tucker-2 model (printed by an earlier run)')
    p.add_argument('--quick', action='store_true', help='--runs 10 --rounds 1')
    p.add_argument('--out', default=str(RESULTS))
    return p.parse_args(argv)


def with_weights(model, fn):
    m = clone_model(model)
    with torch.no_grad():
        for l in compressible_layers(m).values(): l.weight.copy_(fn(l.weight))
    return m


def tucker_at(dense, x, target, k=None):
    "CSTAR's Tucker-2/SVD structure under the parameter budget whose MACs are closest to `target` x dense (bisection on k; or at `k`)."
    N, dense_macs = count_weights(dense), count_macs(dense, x)['macs']
    if k is not None:
        m = lowrank_transform(Tucker2(k, n_dense=N))(dense)
        return m, count_macs(m, x)['macs'] / dense_macs, k
    lo, hi, best = 1, N - 1, None
    for _ in range(18):
        k = (lo + hi) // 2
        try: m = lowrank_transform(Tucker2(k, n_dense=N))(dense)
        except ValueError: lo = k + 1; continue
        frac = count_macs(m, x)['macs'] / dense_macs
        if best is None or abs(frac - target) < abs(best[1] - target): best = (m, frac, k)
        if frac > target: hi = k - 1
        else: lo = k + 1
        if lo > hi or abs(frac - target) < 0.002: break
    return best


def main(argv=None):
    a = parse_args(argv)
    if a.quick: a.runs, a.rounds = 10, 1
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix='deploy-latency-'))
    ks = {m: int(k) for m, k in (v.split('=') for v in a.tucker_k)}
    rows = []
    for name in a.models:
        shape = MODELS[name]['input_shape']
        dense = get_model(name, input_shape=shape, n_classes=10, seed=0).eval()
        x = torch.rand(64, *shape, generator=torch.Generator().manual_seed(0))
        dense_macs = count_macs(dense, x[:1])['macs']
        tucker, frac, k = tucker_at(dense, x[:1], a.macs, ks.get(name))
        keep = lambda w: w * (w.abs() >= w.abs().flatten().kthvalue(max(1, int(0.9 * w.numel()))).values)
        variants = {'dense': dense, f'CSTAR Tucker-2 ({100 * frac:.1f}% MACs)': tucker, 'sparse 10%': with_weights(dense, keep),
                    '8-bit': with_weights(dense, lambda w: (lambda c, b: b[c])(*quantize_uniform(w, 8)))}
        for label, m in variants.items():
            m = m.eval()
            path = export_onnx(m, x, tmp / f"{name}-{len(rows)}.onnx")
            if label == '8-bit': path = quantize_onnx(path, tmp / f"{name}-int8.onnx", calibration=x)
            with torch.no_grad(): ref = m(x[:8])
            err = float((onnx_predict(path, x[:8]) - ref).abs().max() / ref.abs().max())
            tt, to, loads = [], [], []
            for _ in range(a.rounds):
                loads.append(round(os.getloadavg()[0], 2))
                tt.append(cpu_latency(m, x, runs=a.runs, warmup=5, threads=1))
                to.append(onnx_latency(path, x, runs=a.runs, warmup=5, threads=1))
            tmin, omin = min(t['min_ms'] for t in tt), min(t['min_ms'] for t in to)
            tt, to = [t['median_ms'] for t in tt], [t['median_ms'] for t in to]
            mc = count_macs(m, x[:1])
            rows.append(dict(model=name, variant=label, macs=mc['macs'], macs_frac=round(mc['macs'] / dense_macs, 4),
                             effective_macs=mc['effective_macs'], params=sum(p.numel() for p in m.parameters()),
                             onnx_bytes=path.stat().st_size, torch_ms=round(statistics.median(tt), 4), ort_ms=round(statistics.median(to), 4),
                             torch_min_ms=round(tmin, 4), ort_min_ms=round(omin, 4),
                             torch_rounds_ms=[round(v, 4) for v in tt], ort_rounds_ms=[round(v, 4) for v in to],
                             ort_vs_torch_rel_err=round(err, 6), load_1min=loads, tucker_k=k if label.startswith('CSTAR') else None,
                             onnx='int8 (static QDQ)' if label == '8-bit' else 'float32'))
            print(f"{name:<10} {label:<30} torch {rows[-1]['torch_ms']:8.3f} ms  ORT {rows[-1]['ort_ms']:8.3f} ms  "
                  f"MACs {rows[-1]['macs_frac']:.3f}  rel err {err:.1e}  load {loads}", flush=True)
        d = rows[-4]
        for r in rows[-4:]:
            for e in ('torch', 'ort'):
                r[f'{e}_speedup'] = round(d[f'{e}_ms'] / r[f'{e}_ms'], 3); r[f'{e}_speedup_min'] = round(d[f'{e}_min_ms'] / r[f'{e}_min_ms'], 3)
    head = ['model', 'variant', 'macs_frac', 'onnx_bytes', 'torch_ms', 'torch_speedup', 'ort_ms', 'ort_speedup', 'ort_min_ms', 'ort_speedup_min', 'ort_vs_torch_rel_err']
    print('\n' + '  '.join(f"{h:>12}" if i > 1 else f"{h:<30}" if i else f"{h:<10}" for i, h in enumerate(head)))
    for r in rows: print('  '.join(f"{str(r[h]):>12}" if i > 1 else f"{r[h]:<30}" if i else f"{r[h]:<10}" for i, h in enumerate(head)))
    goal = {r['model']: dict(median=r['ort_speedup'], min=r['ort_speedup_min']) for r in rows if r['variant'].startswith('CSTAR')}
    print(f"\ngoal: Tucker-2 at ~10% MACs >= 3x faster than dense at batch 1 in ONNX Runtime: {goal}")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    res = dict(benchmark='deploy_latency', runs=a.runs, rounds=a.rounds, threads=1, batch=1, target_macs=a.macs,
               goal='CSTAR Tucker-2 at ~10% of the MACs >= 3x faster than dense, batch 1, ONNX Runtime', ort_speedup_tucker=goal,
               machine=dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version(), torch=torch.__version__,
                            onnxruntime=__import__('onnxruntime').__version__),
               note='load_1min: the 1-minute load average of the whole (shared) machine at the start of each round', rows=rows)
    (out / 'deploy_latency.json').write_text(json.dumps(res, indent=1))
    with open(out / 'deploy_latency.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if not k.endswith('rounds_ms') and k != 'load_1min'], extrasaction='ignore')
        w.writeheader(); w.writerows(rows)
    print(f"wrote {out / 'deploy_latency.json'} and .csv")
    return res


if __name__ == '__main__':
    main()
