"""The MNIST comparison of the ATMC paper (Gui et al., NeurIPS 2019, Fig. 2 / Table): the paper's LeNet
(conv20-conv50-fc500, 430,500 weights), L-inf eps 0.3, methods DA, NAP, AP, AL0, ALR, ATMC-32, ATMC-8 and CSTAR
keeping a fraction 1e-3 to 1e-1 of the dense weights; clean accuracy (TA) and robust accuracy (ATA) under PGD-40
and FGSM, against the faithful (ATMC) compression ratio, with the honest one beside it.

    python benchmarks/reproduce_mnist.py --root /work/shared/data                  # REDUCED schedule (CPU, hours)
    python benchmarks/reproduce_mnist.py --root /work/shared/data --smoke          # end-to-end check (minutes)
    python benchmarks/reproduce_mnist.py --root /data --full --device cuda         # paper-like schedule (GPU)
    python benchmarks/reproduce_mnist.py --methods AP ATMC-32 --keep 0.01 0.1      # a subset
    python benchmarks/reproduce_mnist.py --plot-only                               # redraw the report from the results

The data root comes from --root or $RCNB_DATA (a folder holding MNIST/raw/...).

How it runs: one `experiments.sweep` per method label (ATMC-b is method ATMC at bits b), all writing the same
results files, so the script only chooses the schedule:
- One dense ADVERSARIAL model (DA) is trained once (`experiments.train_method`, lr `lr_dense`, eps ramped up over
  `eps_warmup` epochs) and every adversarial method starts from it (sweep's shared dense start, `DenseModels`).
  Its weights and training record are kept in one safetensors file of `<out stem>_cache/` (`cli.save_dense`,
  reading it runs no code), so a resumed invocation does not train it again. NAP trains its own natural
  dense stage (`dense_epochs`, at the compression lr) and then prunes.
- Every method gets `stage_epochs` per compression stage (ATMC-8 runs ATMC-32's sparse and factorized stages,
  then its quantization stage). DA is one row (keep empty, CR 1). ALR and CSTAR cannot reach budgets below rank 1
  in every layer (about 2,400 weights for this LeNet, keep ~5.6e-3): sweep writes those rows with status
  'infeasible' and the reason.
- Resumable: sweep skips the rows already in the results (keyed by method, keep, k, bits, eps, seed, data, model)
  and writes each row as it finishes, so an interrupted run loses at most the row in progress. A schedule changed by
  --n-train etc. gets its own tag (e.g. 'reduced-3fa1c2') and its own results files and cache.
- Evaluation: `experiments.teaching_attacks(0.3, recipe('mnist').eval_steps)`: clean, PGD-40 (eps 0.3, alpha
  2.5 eps / 40, random start, 1 restart) and FGSM (eps 0.3) on the `n_test` test images (a stratified subset),
  eval mode, a fixed seed; worst case over the two attacks. Size: faithful CR (ATMC's count: nnz * bits + codebooks,
  no index cost, 32-bit reference) and honest CR (index cost and biases included, relative to the raw dense file).

Schedules (epochs; lr is SGD momentum 0.9, weight decay 5e-4, constant; training attack: the recipe's PGD, random
start, alpha 2.5 eps / steps):
  REDUCED (default; fits a few CPU hours on 2 cores): 10,000 training images, batch 128, training PGD-7,
    dense adversarial pretraining 6 epochs (eps ramped up over the first 2), 2 epochs per compression stage,
    lr 0.05 dense / 0.01 compression stages, evaluation on 1,000 test images.
  FULL (--full, paper-like, meant for a GPU): all 60,000 training images, training PGD-40 (Madry et al.'s MNIST
    protocol, which ATMC follows, at the recipe's alpha), dense pretraining 40 epochs (eps ramped over 5), 10 epochs
    per compression stage, evaluation on all 10,000 test images. The ATMC paper does not state its MNIST epoch
    counts; these are our choice.
  SMOKE (--smoke, about 3 minutes on one CPU thread): 2,000 training images, batch 32, PGD-7 training, dense
    pretraining 2 epochs (eps ramped over the first), 1 epoch per compression stage, 200 test images, methods AP
    and ATMC-8 at keep 0.01 unless --methods/--keep are given. It proves the pipeline end to end on models that
    have learnt something, and its timing gives an estimate of the reduced schedule (printed at the end).

Output: --out (default benchmarks/results/reproduce_mnist.csv; reproduce_mnist_smoke / _full for the other
schedules): `experiments.sweep`'s CSV and JSON, and `<stem>.html` (`experiments.write_report`, plotly from its CDN).
"""
import argparse
import hashlib
import inspect
import json
import os
import sys
from pathlib import Path

import torch

try:  # run from a checkout without installing the package
    import robustcompress_nb  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robustcompress_nb.cli import save_dense, load_dense
from robustcompress_nb.data import get_data
from robustcompress_nb.experiments import (DenseModels, load_rows, recipe, results_paths, results_table, sweep,
                                           teaching_attacks, train_method, write_report)
from robustcompress_nb.models import get_model
from robustcompress_nb.solver import Budget, get_method

RESULTS = Path(__file__).resolve().parent / 'results'
MODEL, EPS = 'lenet_atmc', 0.3
ALL_METHODS = ('DA', 'NAP', 'AP', 'AL0', 'ALR', 'ATMC-32', 'ATMC-8', 'CSTAR')
KEEP = (0.001, 0.003, 0.01, 0.03, 0.1)
SCHEDULES = {
    'reduced': dict(n_train=10_000, n_test=1_000, batch_size=128, train_steps=7, dense_epochs=6, eps_warmup=2,
                    stage_epochs=2, lr_dense=0.05, lr=0.01),
    'full': dict(n_train=None, n_test=None, batch_size=128, train_steps=40, dense_epochs=40, eps_warmup=5,
                 stage_epochs=10, lr_dense=0.05, lr=0.01),
    'smoke': dict(n_train=2_000, n_test=200, batch_size=32, train_steps=7, dense_epochs=2, eps_warmup=1,
                  stage_epochs=1, lr_dense=0.05, lr=0.01),
}
OVERRIDES = ('n_train', 'n_test', 'dense_epochs', 'stage_epochs', 'train_steps')
SGD = dict(momentum=0.9, weight_decay=5e-4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', default=None, help='data folder holding MNIST/raw (default: $RCNB_DATA)')
    g = p.add_mutually_exclusive_group()
    g.add_argument('--full', action='store_true', help='paper-like schedule (GPU)')
    g.add_argument('--smoke', action='store_true', help='tiny end-to-end run')
    p.add_argument('--methods', nargs='+', default=None, help=f"default: {' '.join(ALL_METHODS)} (ATMC-b, AQ-b: any bits b)")
    p.add_argument('--keep', nargs='+', type=float, default=None,
                   help=f"fractions of the dense weights kept, in (0, 1) (default: {' '.join(map(str, KEEP))})")
    p.add_argument('--ratios', nargs='+', default=None, help=argparse.SUPPRESS)   # the old name: refused below
    p.add_argument('--out', default=None, help='results name (default: benchmarks/results/reproduce_mnist[_smoke|_full].csv)')
    p.add_argument('--device', default='auto', help="cpu, cuda, or 'auto' (CUDA when available)")
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--floor', type=int, default=0, help='per-tensor floor of kept weights (sparse methods; 0: faithful)')
    p.add_argument('--loss', default='adversarial', choices=['adversarial', 'mixed'],
                   help="training loss of adversarial stages ('mixed' = ATMC code's 0.5 clean + 0.5 adversarial)")
    for k in OVERRIDES:
        p.add_argument('--' + k.replace('_', '-'), type=int, default=None, help='override the schedule')
    p.add_argument('--cache', default=None, help='folder of the cached dense model (default: <out stem>_cache beside --out; *.pt is git-ignored)')
    p.add_argument('--plot-only', action='store_true', help='only redraw the report from --out')
    p.add_argument('--no-plot', action='store_true')
    a = p.parse_args(argv)
    if a.ratios is not None: p.error('--ratios is now --keep (the fraction of the dense weights kept)')
    for r in a.keep or ():
        if not 0 < r < 1: p.error(f"--keep must be in (0, 1), got {r}")
    return a


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


def dense_start(data, attack, sched, a, device, cache: Path) -> DenseModels:
    """Sweep's shared dense start, trained here (lr `lr_dense`, eps warm-up) or read back from `cache`: one safetensors
    file with the weights and the training record (stages, epochs, seconds) as JSON (`cli.save_dense`: reading runs no code)."""
    dense = DenseModels()
    key = DenseModels.key(data, MODEL, attack, a.seed, sched['dense_epochs'])
    pt = cache / ('dense_' + hashlib.sha1(json.dumps([key, sched, a.loss]).encode()).hexdigest()[:10] + '.safetensors')
    if pt.exists():
        record, state = load_dense(pt)
        model = get_model(MODEL, data.info, seed=a.seed)
        model.load_state_dict(state)
        print(f"dense model from {pt} ({record['train_seconds']:.0f} s of training when made)", flush=True)
    else:
        tr = train_method('da', get_model(MODEL, data.info, seed=a.seed), Budget(), data, attack=attack,
                          epochs=sched['dense_epochs'], lr=sched['lr_dense'], loss=a.loss, seed=a.seed, device=device,
                          eps_warmup=sched['eps_warmup'] or None, **SGD)
        if tr.stopped: raise SystemExit('the dense training was stopped')
        model, record = tr.model, dict(stages=[s.name for s in tr.stages], epochs=[s.epochs for s in tr.stages],
                                       train_seconds=round(tr.seconds, 3))
        save_dense(pt, model, record)
        print(f"dense model trained in {tr.seconds:.0f} s -> {pt}", flush=True)
    dense.cache[key] = (record, model)
    return dense


def estimate_reduced(rows, sched, info) -> str:
    """Rough wall time of the REDUCED schedule (same device and threads), scaled from this run's rows: seconds per
    adversarial training image-epoch (at the reduced schedule's PGD steps), and per test image a trained model's
    PGD-40 + FGSM + ~3 forwards (44 passes at the training pass cost; the smoke models, barely trained, are
    attacked on few images, so their evaluation time under-states it). NAP's natural epochs are neglected."""
    adv = [r for r in rows if r.get('status') == 'ok' and r['protocol']['train'] and sum(r['epochs'])]
    if not adv: return ''
    red = SCHEDULES['reduced']
    per_img = sum(r['train_seconds'] for r in adv) / (sum(sum(r['epochs']) for r in adv) * sched['n_train'])
    per_img *= (red['train_steps'] + 1) / (sched['train_steps'] + 1)
    ev_img = per_img / (red['train_steps'] + 1) * 44
    net, n_rows, stage_epochs = get_model(MODEL, info), 1, 0
    for label in ALL_METHODS[1:]:
        m, bits = parse_label(label)
        for keep in KEEP:
            try: st = get_method(m).stages(net, Budget(keep=keep, bits=bits), epochs=red['stage_epochs'], pretrained=True)
            except ValueError: continue   # infeasible: no row trained
            n_rows += 1; stage_epochs += 0 if get_method(m).natural else sum(s.epochs for s in st)
    train, dense = (e * red['n_train'] * per_img for e in (stage_epochs, red['dense_epochs']))
    ev = n_rows * red['n_test'] * ev_img
    return (f"estimated REDUCED schedule, one process with this run's threads: {stage_epochs} adversarial stage-epochs "
            f"x {red['n_train']} images {train / 3600:.2f} h + dense pretraining {dense / 3600:.2f} h + {n_rows} evaluations "
            f"x {red['n_test']} images {ev / 3600:.2f} h = {(train + dense + ev) / 3600:.1f} h "
            f"(from {per_img * 1e3:.2f} ms per training image-epoch with PGD-{red['train_steps']} and {ev_img * 1e3:.1f} ms per test image)")


def report(rows, out: Path, name: str, plot=True):
    print(results_table(rows))
    if plot and any(r.get('status') == 'ok' for r in rows):
        html = results_paths(out)[0].with_suffix('.html')
        print('report:', write_report(rows, html, title=f"MNIST, LeNet (430,500 weights), eps 0.3: {name} schedule",
                                      include_plotlyjs='cdn', robust='PGD'))


def log(r):
    acc = lambda v: '-' if v is None else f"{v:.3f}"
    print(f"  {r['label']:8s} keep {r['keep'] if r['keep'] is not None else '-':<6} {r['status']:10s} clean {acc(r.get('clean_acc'))} "
          f"PGD-40 {acc(r.get('robust_acc', {}).get('PGD-40'))} faithful CR {r.get('faithful_cr', float('nan')):.2e} "
          f"({r.get('seconds', 0):.0f} s){'  ' + r['error'][:100] if r.get('error') else ''}", flush=True)


def main(argv=None):
    a = parse_args(argv)
    labels = [parse_label(m) for m in a.methods or (['AP', 'ATMC-8'] if a.smoke else ALL_METHODS)]
    name = 'full' if a.full else 'smoke' if a.smoke else 'reduced'
    sched = dict(SCHEDULES[name], **{k: getattr(a, k) for k in OVERRIDES if getattr(a, k) is not None})
    if sched != SCHEDULES[name]:   # overridden: its own tag, results files and dense model cache
        name += '-' + hashlib.sha1(json.dumps(sched, sort_keys=True).encode()).hexdigest()[:6]
    out = Path(a.out) if a.out else RESULTS / f"reproduce_mnist{'' if name == 'reduced' else '_' + name}.csv"
    pc, pj = results_paths(out)
    if pc.exists() and not pj.exists() and 'keep' not in pc.open().readline().split(','):
        raise SystemExit(f"{pc} holds rows of the earlier version of this script (no 'keep' column): move it aside or give --out")
    if a.plot_only: return report(load_rows(out), out, name)
    root = a.root or os.environ.get('RCNB_DATA')
    if not root: raise SystemExit("reproduce_mnist.py: give --root or set RCNB_DATA (a folder with MNIST/raw/...)")
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else ('cpu' if a.device == 'auto' else a.device))
    keeps = a.keep or ([0.01] if a.smoke else list(KEEP))
    data = get_data('mnist', root=root, n_train=sched['n_train'], n_test=sched['n_test'], batch_size=sched['batch_size'], seed=a.seed)
    attack, evaluation = recipe(data).train_attack(EPS, sched['train_steps']), teaching_attacks(EPS, recipe(data).eval_steps)
    print(f"{name} schedule {json.dumps(sched)}; device {device}, {torch.get_num_threads()} thread(s); "
          f"{len(labels)} method(s) x keep {keeps} -> {pc}", flush=True)
    cache = Path(a.cache) if a.cache else out.parent / f"{pc.stem}_cache" / name
    dense = dense_start(data, attack, sched, a, device, cache) if any(not get_method(m).natural for m, _ in labels) else None
    E = sched['stage_epochs']
    for m, bits in dict.fromkeys(labels):
        floor = a.floor if a.floor and 'floor' in inspect.signature(get_method(m).build).parameters else None
        rows = sweep([m], keeps, bits=bits, data=data, model=MODEL, seeds=[a.seed], epochs={'NAP': [sched['dense_epochs'], E], '*': E},
                     dense_epochs=sched['dense_epochs'], dense=dense, out=out, attack=attack, evaluation=evaluation,
                     lr=sched['lr'], loss=a.loss, floor=floor, device=device, on_row=log, **SGD)
    print()
    report(rows, out, name, not a.no_plot)
    if a.smoke: print(estimate_reduced(rows, sched, data.info))
    return rows


if __name__ == '__main__':
    main()
