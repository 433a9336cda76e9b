"""Helpers shared by the benchmark scripts (run as `python benchmarks/NAME.py`, which puts this folder on the path)."""
import hashlib
import inspect
import json
import statistics
import time
from pathlib import Path

import torch

from robustcompress_nb.cli import load_dense, save_dense
from robustcompress_nb.experiments import (DenseModels, load_rows, results_paths, results_table, save_rows, sweep, train_method,
                                           write_report)
from robustcompress_nb.models import get_model
from robustcompress_nb.solver import Budget, get_method
from robustcompress_nb.train import Callback, CancelFitException, OverfitGuard


def sync(device):
    "Wait for queued CUDA work, so that a timer measures it; a no-op on the CPU."
    device = torch.device(device)
    if device.type == 'cuda': torch.cuda.synchronize(device)


def median_time(fn, repeats, device, clock=time.perf_counter):
    "Median over `repeats` timed calls of `fn()`, after one untimed warm-up call."
    fn(); sync(device)
    ts = []
    for _ in range(repeats):
        sync(device); t = clock(); fn(); sync(device); ts.append(clock() - t)
    return statistics.median(ts)


class StopAfter(Callback):
    "Cancel the run after `n` optimizer steps (an untimed warm-up)."
    order = 99
    def __init__(self, n): self.n = n
    def after_step(self):
        if self.trainer.step >= self.n: raise CancelFitException


# ---- the reproduction scripts (reproduce_mnist.py, reproduce_cifar10.py): one `experiments.sweep` per method label, every
# method from one shared dense adversarial model with the same total number of training epochs (see their docstrings)

def add_reproduction_args(p, data_help: str, methods, keep, overrides):
    "The arguments every reproduction script takes (schedules, models and output are the script's own)."
    p.add_argument('--root', default=None, help=f'data folder holding {data_help} (default: $RCNB_DATA)')
    p.add_argument('--methods', nargs='+', default=None, help=f"default: {' '.join(methods)} (ATMC-b, AQ-b: any bits b)")
    p.add_argument('--keep', nargs='+', type=float, default=None,
                   help=f"fractions of the dense weights kept, in (0, 1) (default: {' '.join(map(str, keep))})")
    p.add_argument('--device', default='auto', help="cpu, cuda, or 'auto' (CUDA when available)")
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--floor', type=int, default=0, help='per-tensor floor of kept weights (sparse methods; 0: faithful)')
    p.add_argument('--loss', default='adversarial', choices=['adversarial', 'mixed'],
                   help="training loss of adversarial stages ('mixed' = ATMC code's 0.5 clean + 0.5 adversarial)")
    for k in overrides:
        p.add_argument('--' + k.replace('_', '-'), type=int, default=None, help='override the schedule')
    p.add_argument('--cache', default=None, help="folder of the cached dense model (default: <out stem>_cache beside the results; git-ignored, except the reduced CIFAR-10 run's)")
    p.add_argument('--plot-only', action='store_true', help='only redraw the report from the results')
    p.add_argument('--no-plot', action='store_true')


def check_keep(p, a):
    for r in a.keep or ():
        if not 0 < r < 1: p.error(f"--keep must be in (0, 1), got {r}")


def tagged(name: str, sched: dict, default: dict) -> str:
    "The schedule's tag: its name, plus a hash of the schedule when options changed it (own results files and cache)."
    if sched == default: return name
    return name + '-' + hashlib.sha1(json.dumps(sched, sort_keys=True).encode()).hexdigest()[:6]


def device_of(a) -> torch.device:
    if a.threads: torch.set_num_threads(a.threads)
    return torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else ('cpu' if a.device == 'auto' else a.device))


def parse_label(label: str) -> tuple[str, int | None]:
    "('ATMC', 8) for 'ATMC-8', ('ATMC', None) for 'ATMC-32', (name, None) for a method without bits."
    name, _, b = label.upper().partition('-')
    try:
        m, bits = get_method(name), (None if b in ('', '32') else int(b))
        Budget(bits=bits)   # bits in 1..16
    except ValueError as e: raise SystemExit(f"--methods: {label!r}: {e}") from None
    if (m.bits == 'none' and b) or (m.bits == 'required' and bits is None):
        raise SystemExit(f"--methods: {label!r}: {m.name} takes {'no bits' if m.bits == 'none' else 'bits, as ' + m.name + '-b'}")
    return m.name, bits


def split_epochs(total: int, n: int) -> list[int]:
    "`total` epochs over `n` stages, as evenly as possible, earlier stages first: split_epochs(3, 2) == [2, 1]."
    if n < 1 or total < n: raise SystemExit(f"compress_epochs={total} cannot give each of {n} stages an epoch")
    return [total // n + (i < total % n) for i in range(n)]


def method_epochs(m: str, bits, sched, info, model_name: str) -> list[int]:
    """The per-stage epochs (dense stage first) giving method `m` the schedule's equal budget: the shared dense stage
    (`dense_epochs`, left out by sweep's shared start) + `compress_epochs` over its other stages; NAP: both natural."""
    D, C = sched['dense_epochs'], sched['compress_epochs']
    n = len(get_method(m).build(get_model(model_name, info), Budget(keep=0.1, bits=bits))) - 1
    return [D if get_method(m).natural else 0] + split_epochs(C, n)


def dense_start(data, model_name: str, attack, sched: dict, a, device, cache: Path, options: dict, guard: bool = False) -> DenseModels:
    """Sweep's shared dense start, trained here (lr `lr_dense`, eps warm-up, the train `options`; with `guard` a
    `train.OverfitGuard` on the test loader's first 256 images) or read back from `cache`: one safetensors file with the
    weights and the training record (stages, epochs, seconds, guard events) as JSON (`cli.save_dense`: reading runs no code)."""
    dense = DenseModels()
    key = DenseModels.key(data, model_name, attack, a.seed, sched['dense_epochs'])
    pt = cache / ('dense_' + hashlib.sha1(json.dumps([key, sched, a.loss]).encode()).hexdigest()[:10] + '.safetensors')
    if pt.exists():
        record, state = load_dense(pt)
        model = get_model(model_name, data.info, seed=a.seed)
        model.load_state_dict(state)
        print(f"dense model from {pt} ({record['train_seconds']:.0f} s of training when made)", flush=True)
    else:
        cbs = [OverfitGuard(data.test)] if guard else []
        tr = train_method('da', get_model(model_name, data.info, seed=a.seed), Budget(), data, attack=attack,
                          epochs=sched['dense_epochs'], lr=sched['lr_dense'], loss=a.loss, seed=a.seed, device=device,
                          eps_warmup=sched['eps_warmup'] or None, callbacks=cbs, **options)
        if tr.stopped: raise SystemExit('the dense training was stopped')
        model, record = tr.model, dict(stages=[s.name for s in tr.stages], epochs=[s.epochs for s in tr.stages],
                                       train_seconds=round(tr.seconds, 3))
        if guard: record['guard'] = cbs[0].events
        save_dense(pt, model, record)
        print(f"dense model trained in {tr.seconds:.0f} s -> {pt}" + (f" (guard: {len(cbs[0].events)} collapse(s))" if guard else ''), flush=True)
    dense.cache[key] = (record, model)
    return dense


def log(r):
    "One line per finished row."
    acc = lambda v: '-' if v is None else f"{v:.3f}"
    head = 'upper bound' if r.get('headline') == 'robust_upper_bound' else 'robust'
    print(f"  {r['label']:8s} keep {r['keep'] if r['keep'] is not None else '-':<6} {r['status']:10s} clean {acc(r.get('clean_acc'))} "
          f"{head} {acc(r.get('worst_case_acc'))}{' MASKED (' + ', '.join(r['masking_flags']) + ')' if r.get('masked') else ''} "
          f"epochs {r.get('epochs_total', '-')} faithful CR {r.get('faithful_cr', float('nan')):.2e} "
          f"({r.get('seconds', 0):.0f} s){'  ' + r['error'][:100] if r.get('error') else ''}", flush=True)


def continue_da(out, sched, dense_record):
    """Make the DA row's record say what it is: the shared dense model (`dense_epochs`) continued for `compress_epochs`
    at the compression lr; its epochs_total and training seconds then count both (idempotent)."""
    rows = load_rows(out)
    for r in rows:
        if r['method'] == 'DA' and r.get('status') == 'ok' and r['stages'] == ['dense']:
            r.update(stages=['dense (shared start)', 'dense (continued)'], epochs=[sched['dense_epochs']] + r['epochs'],
                     epochs_total=sched['dense_epochs'] + sum(r['epochs']),
                     train_seconds=round(r['train_seconds'] + dense_record['train_seconds'], 3))
            r['seconds'] = round(r['train_seconds'] + r['eval_seconds'], 3)
    save_rows(rows, out)
    return rows


def run_plan(labels, keeps, sched: dict, dense: DenseModels | None, common: dict, out, model_name: str, info, floor: int = 0) -> list[dict]:
    """Every method at one budget, then the next: one `sweep` per (keep, label), all into `out`. DA is one row: the
    shared dense model continued for `compress_epochs` at the compression lr. `common`: sweep's other arguments."""
    rows, plan = load_rows(out), [(keep, m, bits) for keep in keeps for m, bits in dict.fromkeys(labels)]
    for keep, m, bits in plan:
        if m == 'DA':
            if keep != keeps[0]: continue
            record, start = next(iter(dense.cache.values()))
            sweep(['DA'], bits=bits, epochs=sched['compress_epochs'], share_dense=False, model_name=model_name, **dict(common, model=start))
            rows = continue_da(out, sched, record)
            continue
        fl = floor if floor and 'floor' in inspect.signature(get_method(m).build).parameters else None
        rows = sweep([m], [keep], bits=bits, epochs=method_epochs(m, bits, sched, info, model_name), dense_epochs=sched['dense_epochs'],
                     dense=dense, floor=fl, **common)
    return rows


def report(rows, out: Path, title: str, plot=True):
    "Print the results table; write `<out stem>.html` (trade-off on the honest-size axis, Pareto front) when rows ran."
    print(results_table(rows))
    if plot and any(r.get('status') == 'ok' for r in rows):
        html = results_paths(out)[0].with_suffix('.html')
        print('report:', write_report(rows, html, title=title, include_plotlyjs='cdn'))


def feasible_rows(labels, keeps, net) -> list[tuple[str, float | None, bool]]:
    "(method, keep, natural) of the rows a plan of `labels` x `keeps` trains on `net`: DA once, the others at the budgets they can meet."
    out = [('DA', None, False)]
    for label in labels:
        m, bits = parse_label(label)
        if m == 'DA': continue
        for keep in keeps:
            try: get_method(m).stages(net, Budget(keep=keep, bits=bits), pretrained=True)
            except ValueError: continue   # infeasible: no row trained
            out.append((m, keep, get_method(m).natural))
    return out


def estimate(rows, sched: dict, target: dict, target_name: str, labels, keeps, net, passes, attack_text: str) -> str:
    """Rough wall time of the `target` schedule (same device and threads), scaled from this run's rows: seconds per
    adversarial training image-epoch (times `passes(target) / passes(sched)`, the forward-backward passes per image of
    their training attacks), and the mean evaluation seconds per test image of this run's rows (the smoke models, barely
    trained, are attacked on fewer surviving points, so this under-states it). NAP's natural epochs are neglected."""
    adv = [r for r in rows if r.get('status') == 'ok' and r['protocol']['train'] and sum(r['epochs'])]
    if not adv: return ''
    per_img = sum(r['train_seconds'] for r in adv) / (sum(sum(r['epochs']) for r in adv) * sched['n_train'])
    per_img *= passes(target) / passes(sched)
    ev_img = sum(r['eval_seconds'] for r in adv) / sum(r['n_eval'] for r in adv)
    plan = feasible_rows(labels, keeps, net)
    n_rows, epochs = len(plan), sum(not natural for *_, natural in plan) * target['compress_epochs']
    n_train = target['n_train'] or 0
    train, dense = (e * n_train * per_img for e in (epochs, target['dense_epochs']))
    ev = n_rows * target['n_test'] * ev_img
    return (f"estimated {target_name.upper()} schedule, one process with this run's threads: {epochs} adversarial epochs after the dense "
            f"stage x {n_train} images {train / 3600:.2f} h + dense pretraining {dense / 3600:.2f} h + {n_rows} evaluations "
            f"x {target['n_test']} images {ev / 3600:.2f} h = {(train + dense + ev) / 3600:.1f} h "
            f"(from {per_img * 1e3:.2f} ms per training image-epoch with {attack_text} and {ev_img * 1e3:.0f} ms per test image)")
