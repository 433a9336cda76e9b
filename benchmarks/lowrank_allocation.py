"""Global rank allocation on a trained network: SVD ranks (ALR's set) against Tucker-2 ranks (CSTAR's set).

For each budget (a fraction `keep` of the conv + linear weights), both constraint sets allocate their ranks over all
layers at once (`constraints.LowRank`, `constraints.Tucker2`) and project the trained dense weights onto the set:
no training, so the table isolates what the allocation and the projection keep. Per set and budget: the ranks, the
parameters used (of the budget), the fraction of the weights' energy the projections keep, and the clean accuracy of
the projected model on the first `--n-test` test images.

    python benchmarks/lowrank_allocation.py --root /work/shared/data         # CIFAR-10, the reduced run's dense start

The dense model is the CIFAR-10 reproduction's cached dense start (`--dense`: any file `cli.save_dense` wrote for the
same model). The data root comes from --root or $RCNB_DATA. Prints a table and writes
benchmarks/results/lowrank_allocation_<model>.json (--out: another path).
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

try:
    import robustcompress_nb  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robustcompress_nb.cli import load_dense
from robustcompress_nb.constraints import LowRank, Tucker2
from robustcompress_nb.data import get_data
from robustcompress_nb.models import get_model, count_weights
from robustcompress_nb.solver import dense_weights

HERE = Path(__file__).resolve().parent
DENSE = HERE / 'results' / 'reproduce_cifar10_cifar_small_cache' / 'reduced' / 'dense_bf4a579939.safetensors'


def accuracy(model, loader) -> float:
    model.eval(); right = n = 0
    with torch.no_grad():
        for x, y in loader: right += int((model(x).argmax(1) == y).sum()); n += len(y)
    return right / n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--root', default=os.environ.get('RCNB_DATA'), help='data root (default: $RCNB_DATA)')
    p.add_argument('--data', default='cifar10'); p.add_argument('--model', default='cifar_small')
    p.add_argument('--dense', default=str(DENSE), help='the dense model (a cli.save_dense file)')
    p.add_argument('--keep', type=float, nargs='+', default=[0.1, 0.05, 0.02])
    p.add_argument('--n-test', type=int, default=1000)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', default=None)
    a = p.parse_args(argv)
    if a.root is None: p.error('give the data root: --root or $RCNB_DATA')
    if not all(0 < k <= 1 for k in a.keep): p.error(f'--keep must be in (0, 1], got {a.keep}')
    torch.set_num_threads(a.threads)
    data = get_data(a.data, root=a.root, n_test=a.n_test, batch_size=250, seed=0)
    _, state = load_dense(a.dense)
    dense = get_model(a.model, data.info); dense.load_state_dict(state)
    ws = [w.detach() for w in dense_weights(dense)]
    N, energy = count_weights(dense), sum(float(w.double().square().sum()) for w in ws)
    rows = [dict(set='dense', keep=1.0, ranks=None, params=N, energy=1.0, clean_acc=accuracy(dense, data.test), seconds=0.0)]
    for keep in a.keep:
        for C in (LowRank, Tucker2):
            c = C(ratio=keep, n_dense=N)
            try:
                t = time.perf_counter(); ranks = c.ranks(ws); proj = c.project(ws); sec = time.perf_counter() - t
            except ValueError as e:   # the budget is below rank 1 (Tucker-2 ranks (1, 1)) everywhere
                rows.append(dict(set=C.__name__, keep=keep, ranks=None, params=None, energy=None, clean_acc=None, error=str(e))); continue
            m = get_model(a.model, data.info); m.load_state_dict(state)
            with torch.no_grad():
                for w, q in zip(dense_weights(m), proj): w.copy_(q)
            rows.append(dict(set=C.__name__, keep=keep, ranks=[list(r) if isinstance(r, tuple) else r for r in ranks],
                             params=c.cost(proj)['params'], budget=c.budget_for(ws),
                             energy=sum(float(q.double().square().sum()) for q in proj) / energy,
                             clean_acc=accuracy(m, data.test), seconds=sec))
    print(f"{a.data} {a.model} ({N:,} weights), dense model {Path(a.dense).name}; projection only (no training), clean accuracy on {a.n_test} test images")
    print(f"{'set':<8} {'keep':>5} {'params':>8} {'energy':>7} {'clean':>6}  ranks")
    for r in rows:
        if r.get('error'): print(f"{r['set']:<8} {r['keep']:>5} {'-':>8} {'-':>7} {'-':>6}  infeasible: {r['error'][:80]}"); continue
        print(f"{r['set']:<8} {r['keep']:>5} {r['params']:>8,} {r['energy']:>7.1%} {r['clean_acc']:>6.1%}  {r['ranks']}")
    out = Path(a.out) if a.out else HERE / 'results' / f'lowrank_allocation_{a.model}.json'
    out.write_text(json.dumps(dict(data=a.data, model=a.model, dense=Path(a.dense).name, n_test=a.n_test, rows=rows), indent=1))
    print('wrote', out)


if __name__ == '__main__':
    main()
