"""Throughput of `sweep(..., backend='ray')` on 1 and 2 local Ray workers (1 thread each), against the
sequential backend, with a check that all three give the same rows.

    python benchmarks/sweep_scaling.py                  # digits (bundled with scikit-learn): no data folder needed
    python benchmarks/sweep_scaling.py --quick          # a smaller sweep (a smoke test of the script)

The sweep: `--methods` at `--keep` for `--seeds` seeds, plus DA, on the digits; every seed's dense model is an
upstream task, so with two seeds the two dense models train side by side as well. With W workers the ideal
speed-up is W (the dense models and the cells split evenly); what is lost is the task overhead (shipping data
and models between processes, Ray's scheduling) and, on a shared machine, the cores other processes take.

What is timed: the `sweep` call alone, Ray already started (`ray.init(num_cpus=W)`) and its W workers started
with the package imported (the steady state of a long sweep; both times are reported apart), one torch thread
in every task and in the sequential run. Throughput = cells / wall seconds.
The load average of the machine before and after each run is recorded, and the sum of the cells' own times
(measured inside the workers): on a machine shared with other jobs the second worker may not get a core of
its own, which shows as cells that each take longer, not as Ray overhead.

Prints a table and writes benchmarks/results/sweep_scaling.json.
"""
import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from robustcompress_nb.attacks import PGD
from robustcompress_nb.data import get_data
from robustcompress_nb.experiments import sweep, teaching_protocol, sweep_plan

RESULTS = Path(__file__).resolve().parent / 'results'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--methods', nargs='+', default=['al0', 'ap', 'alr', 'cstar'])
    p.add_argument('--keep', nargs='+', type=float, default=[0.1])
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    p.add_argument('--n-train', type=int, default=1437, help='digits training images (all: 1437)')
    p.add_argument('--n-test', type=int, default=360)
    p.add_argument('--epochs', type=int, default=2, help='epochs per stage and of the dense model')
    p.add_argument('--train-steps', type=int, default=3, help='PGD steps of the training attack')
    p.add_argument('--eval-steps', type=int, default=20, help='PGD steps of the evaluation')
    p.add_argument('--workers', nargs='+', type=int, default=[1, 2])
    p.add_argument('--quick', action='store_true', help='256 training images, 100 test images')
    p.add_argument('--out', default=str(RESULTS))
    return p.parse_args(argv)


def warm():
    "Run in each worker before the timed sweep: import what a cell imports."
    import robustcompress_nb.experiments  # noqa: F401
    return os.getpid()


def untimed(rows):
    return [{k: v for k, v in r.items() if not k.endswith('seconds')} for r in rows]


def main(argv=None):
    a = parse_args(argv)
    if a.quick: a.n_train, a.n_test = 256, 100
    import ray
    torch.set_num_threads(1)
    data = get_data('digits', n_train=a.n_train, n_test=a.n_test, batch_size=64, seed=0)
    eps = data.info.eps
    grid = dict(methods=['da'] + a.methods, keep=a.keep, seeds=a.seeds, data=data, epochs=a.epochs,
                attack=PGD(eps, steps=a.train_steps), protocol=teaching_protocol(eps, a.eval_steps))
    cells = len(sweep_plan(grid['methods'], a.keep, seeds=a.seeds))
    tmp = Path(tempfile.mkdtemp(prefix='sweep-scaling-'))
    runs = []
    def run(name, **kw):
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        rows = sweep(**grid, out=tmp / name, resume=False, **kw)
        sec = time.perf_counter() - t0
        inside = sum(x.get('seconds', 0) for x in rows)   # each cell's own time in run_method (in its worker)
        r = dict(run=name, seconds=round(sec, 2), cells=cells, cells_per_min=round(60 * cells / sec, 2), cell_seconds=round(inside, 2),
                 load_before=[round(v, 2) for v in load0], load_after=[round(v, 2) for v in os.getloadavg()])
        print(f"{name:<12} {sec:8.1f} s  {r['cells_per_min']:6.2f} cells/min  cells' own time {inside:6.1f} s  load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f}", flush=True)
        runs.append(r)
        return rows
    ref = run('sequential')
    same = {}
    for w in a.workers:
        t0 = time.perf_counter()
        for attempt in range(3):   # a local Ray started right after another one stopped can time out on a loaded machine
            try: ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False); break
            except Exception as e:
                print(f"ray.init failed ({type(e).__name__}: {str(e)[:120]}), retrying", flush=True)
                ray.shutdown(); time.sleep(10)
        else: raise RuntimeError('could not start a local Ray instance')
        init = time.perf_counter() - t0
        t0 = time.perf_counter()   # start every worker and import the package there first: the steady state of a long sweep
        ray.get([ray.remote(num_cpus=1)(warm).remote() for _ in range(w)])
        warmup = time.perf_counter() - t0
        try: rows = run(f'ray-{w}', backend='ray', ray_options=dict(threads=1))
        finally: ray.shutdown(); time.sleep(5)
        runs[-1].update(workers=w, ray_init_seconds=round(init, 2), worker_warmup_seconds=round(warmup, 2))
        same[f'ray-{w}'] = untimed(rows) == untimed(ref)
    by = {r['run']: r for r in runs}
    base = by.get('ray-1', by['sequential'])['seconds']
    for r in runs: r['speedup_vs_ray1'] = round(base / r['seconds'], 3)
    res = dict(benchmark='sweep_scaling', cells=cells, grid=dict(methods=grid['methods'], keep=a.keep, seeds=a.seeds, n_train=a.n_train,
               n_test=a.n_test, epochs=a.epochs, train_steps=a.train_steps, eval_steps=a.eval_steps),
               runs=runs, rows_identical=same, goal='>= 1.6x throughput on 2 workers vs 1',
               machine=dict(cpus=os.cpu_count(), platform=platform.platform(), python=platform.python_version(), torch=torch.__version__,
                            ray=ray.__version__),
               note='rows compared without their timing fields (*seconds); loads are 1/5/15-minute load averages of the whole machine; '
                    'cell_seconds: the sum of the cells\' own run_method times, measured in the workers (if it grows with W, the '
                    'workers were slowed by sharing cores, not by Ray)')
    print(f"\n{'run':<12} {'seconds':>8} {'cells/min':>10} {'speed-up':>9} {'cells own s':>12} {'load (1 min)':>14}  rows = sequential")
    for r in runs:
        print(f"{r['run']:<12} {r['seconds']:8.1f} {r['cells_per_min']:10.2f} {r['speedup_vs_ray1']:8.2f}x {r['cell_seconds']:12.1f} "
              f"{r['load_before'][0]:6.1f} -> {r['load_after'][0]:4.1f}  {same.get(r['run'], '-')}")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out / 'sweep_scaling.json').write_text(json.dumps(res, indent=1))
    print(f"wrote {out / 'sweep_scaling.json'}")
    return res


if __name__ == '__main__':
    main()
