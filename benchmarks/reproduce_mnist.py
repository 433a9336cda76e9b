"""The MNIST comparison of the ATMC paper (Gui et al., NeurIPS 2019, Fig. 2 / Table): the paper's LeNet
(conv20-conv50-fc500, 430,500 weights), L-inf eps 0.3, methods DA, NAP, AP, AL0, ALR, ATMC-32, ATMC-8 and CSTAR
at compression ratios from 1e-3 to 1e-1; clean accuracy (TA) and robust accuracy (ATA) under PGD-40
(alpha 0.01, random start) and FGSM, against the faithful (ATMC) compression ratio, with the honest one beside it.

    python benchmarks/reproduce_mnist.py --root /work/shared/data                  # REDUCED schedule (CPU, hours)
    python benchmarks/reproduce_mnist.py --root /work/shared/data --smoke          # end-to-end check (minutes)
    python benchmarks/reproduce_mnist.py --root /data --full --device cuda         # paper-like schedule (GPU)
    python benchmarks/reproduce_mnist.py --methods AP ATMC-32 --ratios 0.01 0.1    # a subset
    python benchmarks/reproduce_mnist.py --plot-only                               # redraw the plot from the CSV

The data root comes from --root or $RCNB_DATA (a folder holding MNIST/raw/...).

How it runs (the loop is written here on `solver.Solver` directly, not on `experiments.run_method`/`sweep`, because
(1) their evaluation PGD has alpha = 2.5 eps / steps (0.01875 for PGD-40 at eps 0.3), not the paper's alpha 0.01;
(2) `sweep` does not keep the shared dense models across resumed invocations (this run takes about an hour), and
ATMC-b there re-runs ATMC-32's stages instead of continuing from the ATMC-32 model. Infeasible budgets give
'infeasible' rows in both. Once (1) and (2) are options of `experiments`, `Runner.run_row` can be replaced by
`run_method(..., pretrained=...)`):
- One dense ADVERSARIAL model (DA) and one dense NATURAL model (NAP's start) are trained once and cached
  (`<out stem>_cache/`); every compression method starts from the DA model (NAP from the natural one), so each
  method's schedule is `solver.METHODS[...]` with its 'dense' stage dropped (epochs 0). This is how the paper's
  methods start (from a pretrained dense model) and saves the same dense training eight times per ratio.
- ATMC-b continues from the ATMC-32 model of the same ratio (the same sparse + factorized stages, then the ADMM
  quantization stage), as in ATMC's schedule; the ATMC-32 model is cached per ratio.
- DA is one row (ratio empty, CR 1). ALR and CSTAR cannot reach budgets below rank 1 in every layer
  (about 2,400 weights for this LeNet, CR ~5.6e-3): those rows are written with status 'infeasible' and the error.
- Resumable: rows already in --out (same method, ratio, schedule tag) are skipped; cached models are reused (a schedule
  changed by --n-train etc. gets its own tag, e.g. 'reduced-3fa1c2', and cache folder). Results are
  appended row by row, so an interrupted run loses at most the row in progress.
- Evaluation: clean, PGD-40 (eps 0.3, alpha 0.01, random start, 1 restart) and FGSM (eps 0.3) on the first
  `n_test` test images (a stratified subset), eval mode, a fixed seed; worst case over the two attacks.
- Size: `size.model_size(model, dense_weights=N)`: faithful CR (ATMC's count: nnz * bits + codebooks, no index
  cost, 32-bit reference) and honest CR (index cost included, biases included, relative to the raw dense file).

Schedules (epochs; lr is SGD momentum 0.9, weight decay 5e-4, constant):
  REDUCED (default; fits a few CPU hours on 2 cores): 10,000 training images, batch 128, training attack PGD-7
    (eps 0.3, alpha 2.5 * eps / 7, random start), dense adversarial pretraining 6 epochs (eps ramped up over the
    first 2), 2 epochs per compression stage, lr 0.05 dense / 0.01 compression stages, evaluation on 1,000 test
    images.
  FULL (--full, paper-like, meant for a GPU): all 60,000 training images, training attack PGD-40 (eps 0.3,
    alpha 0.01, random start; Madry et al.'s MNIST protocol, which ATMC follows), dense pretraining 40 epochs
    (eps ramped over 5), 10 epochs per compression stage, evaluation on all 10,000 test images. The ATMC paper
    does not state its MNIST epoch counts; these are our choice.
  SMOKE (--smoke): 500 training images, batch 32 (16 steps, so ADMM's q=10 update runs), PGD-7 training,
    1 epoch everywhere (dense too), 200 test images,
    methods AP and ATMC-8 (which runs ATMC-32 first) at ratio 0.01 unless --methods/--ratios are given. It proves the
    pipeline end to end and its timing gives an estimate of the reduced schedule (printed at the end).

Output: --out CSV (default benchmarks/results/reproduce_mnist.csv; the smoke run defaults to
reproduce_mnist_smoke.csv), and a plot beside it: <stem>.html (plotly), plus <stem>.png when kaleido is installed.
"""
import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import torch

try:  # run from a checkout without installing the package
    import robustcompress_nb  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robustcompress_nb.attacks import FGSM, PGD
from robustcompress_nb.data import get_data
from robustcompress_nb.evaluation import evaluate
from robustcompress_nb.models import count_weights, get_model
from robustcompress_nb.size import model_size
from robustcompress_nb.solver import Solver, METHODS

RESULTS = Path(__file__).resolve().parent / 'results'
ALL_METHODS = ('DA', 'NAP', 'AP', 'AL0', 'ALR', 'ATMC-32', 'ATMC-8', 'CSTAR')
RATIOS = (0.001, 0.003, 0.01, 0.03, 0.1)
SCHEDULES = {
    'reduced': dict(n_train=10_000, n_test=1_000, batch_size=128, train_steps=7, train_alpha=None,
                    dense_epochs=6, eps_warmup=2, stage_epochs=2, lr_dense=0.05, lr=0.01),
    'full': dict(n_train=None, n_test=None, batch_size=128, train_steps=40, train_alpha=0.01,
                 dense_epochs=40, eps_warmup=5, stage_epochs=10, lr_dense=0.05, lr=0.01),
    'smoke': dict(n_train=500, n_test=200, batch_size=32, train_steps=7, train_alpha=None,
                  dense_epochs=1, eps_warmup=0, stage_epochs=1, lr_dense=0.05, lr=0.01),
}
FIELDS = ['method', 'ratio', 'schedule', 'status', 'k', 'bits', 'clean_acc', 'pgd40_acc', 'fgsm_acc', 'worst_acc',
          'faithful_cr', 'honest_cr', 'faithful_x', 'honest_x', 'nnz', 'params', 'n_test', 'train_s', 'eval_s',
          'stages', 'feasible', 'error', 'seed', 'device', 'torch']
EPS = 0.3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--root', default=None, help='data folder holding MNIST/raw (default: $RCNB_DATA)')
    g = p.add_mutually_exclusive_group()
    g.add_argument('--full', action='store_true', help='paper-like schedule (GPU)')
    g.add_argument('--smoke', action='store_true', help='tiny end-to-end run')
    p.add_argument('--methods', nargs='+', default=None, help=f"default: {' '.join(ALL_METHODS)} (ATMC-b: any bits b)")
    p.add_argument('--ratios', nargs='+', type=float, default=None, help=f"default: {' '.join(map(str, RATIOS))}")
    p.add_argument('--out', default=None, help='CSV (default: benchmarks/results/reproduce_mnist[_smoke|_full].csv)')
    p.add_argument('--device', default='auto', help="cpu, cuda, or 'auto' (CUDA when available)")
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--floor', type=int, default=0, help='per-tensor floor of kept weights (sparse methods; 0: faithful)')
    p.add_argument('--loss', default='adversarial', choices=['adversarial', 'mixed'],
                   help="training loss of adversarial stages ('mixed' = ATMC code's 0.5 clean + 0.5 adversarial)")
    for k in ('n_train', 'n_test', 'dense_epochs', 'stage_epochs', 'train_steps'):
        p.add_argument('--' + k.replace('_', '-'), type=int, default=None, help='override the schedule')
    p.add_argument('--cache', default=None, help='folder of cached models (default: <out stem>_cache beside --out; *.pt is git-ignored)')
    p.add_argument('--plot-only', action='store_true', help='only redraw the plot from --out')
    p.add_argument('--no-plot', action='store_true')
    return p.parse_args(argv)


# ------------------------------------------------------------------------------------------------ rows
def read_rows(path: Path) -> list[dict]:
    if not path.exists(): return []
    with path.open(newline='') as f: return list(csv.DictReader(f))


def append_row(path: Path, row: dict):
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('a', newline='') as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction='ignore')
        if new: w.writeheader()
        w.writerow({k: row.get(k, '') for k in FIELDS})
        f.flush(); os.fsync(f.fileno())


def key(method, ratio, schedule) -> tuple:
    return method, '' if ratio is None else f"{float(ratio):g}", schedule


def parse_method(m: str):
    "('ATMC', bits) for 'ATMC-32'/'ATMC-b', (name, None) otherwise."
    u = m.upper()
    if u.startswith('ATMC-'):
        b = int(u.split('-', 1)[1])
        return 'ATMC', (None if b == 32 else b)
    if u not in METHODS: raise SystemExit(f"unknown method {m!r}; choose from {', '.join(ALL_METHODS)} or ATMC-b")
    return u, None


# ------------------------------------------------------------------------------------------------ runs
def attacks_eval():
    return {'PGD-40': PGD(eps=EPS, alpha=0.01, steps=40, random_start=True), 'FGSM': FGSM(eps=EPS)}


def measure(model, data, N, sched, seed, device) -> dict:
    "Evaluation (fixed seed) and size of a deployed model."
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ev = evaluate(model, data.test, attacks_eval(), n_examples=sched['n_test'])
    sz = model_size(model.cpu(), dense_weights=N)
    model.to(device)
    return dict(clean_acc=ev['clean_acc'], pgd40_acc=ev['robust_acc']['PGD-40'], fgsm_acc=ev['robust_acc']['FGSM'],
                worst_acc=ev['worst_case_acc'], n_test=ev['n'], faithful_cr=sz['faithful_cr'], honest_cr=sz['honest_cr'],
                faithful_x=sz['faithful_x'], honest_x=sz['honest_x'], nnz=sz['nnz'], params=sz['params'],
                eval_s=time.perf_counter() - t0)


def train_attack(sched):
    s = sched['train_steps']
    return PGD(eps=EPS, alpha=sched['train_alpha'] or 2.5 * EPS / s, steps=s, random_start=True)


TIMINGS = []  # (adversarial epochs, seconds) of every Solver run of this process, for the smoke run's estimate


def run_solver(model, data, stages, sched, seed, device, attack):
    t0 = time.perf_counter()
    sol = Solver(model, data, stages, attack=attack, seed=seed, device=device)
    out = sol.run()
    s = time.perf_counter() - t0
    TIMINGS.append((sum(st.epochs for st in stages if st.loss != 'natural'), s))
    return out, sol, s


class Runner:
    "Caches the dense models and the ATMC-32 models; runs one (method, ratio) row."
    def __init__(self, a, sched, name, data, device, cache: Path):
        self.a, self.sched, self.name, self.data, self.device, self.cache = a, sched, name, data, device, cache
        self.attack = train_attack(sched)
        self.N = count_weights(get_model('lenet_atmc', data.info))
        self.opts = dict(weight_decay=5e-4, momentum=0.9)

    def _cached(self, tag, build):
        "A cached model (torch.save of the module), built by `build() -> (model, seconds)` when missing."
        path = self.cache / f"{tag}.pt"
        if path.exists():
            return torch.load(path, weights_only=False, map_location=self.device), 0.0
        model, s = build()
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.tmp'); torch.save(model, tmp); os.replace(tmp, path)
        return model, s

    def dense(self, natural=False):
        sc = self.sched
        def build():
            m0 = get_model('lenet_atmc', self.data.info, seed=self.a.seed)
            opts = dict(self.opts)
            if not natural and sc['eps_warmup']: opts['eps_warmup'] = sc['eps_warmup']
            st = METHODS['DA'](epochs=sc['dense_epochs'], lr=sc['lr_dense'], loss='natural' if natural else self.a.loss, **opts)
            m, _, s = run_solver(m0, self.data, st, sc, self.a.seed, self.device, None if natural else self.attack)
            return m, s
        return self._cached(f"dense_{'natural' if natural else 'adversarial'}", build)

    def stages(self, method, bits, ratio):
        "The method's schedule without its dense stage (and, for ATMC-b, only the quantize stage)."
        N, E, lr = self.N, self.sched['stage_epochs'], self.sched['lr']
        kw = dict(lr=lr, **self.opts)
        loss = dict(loss=self.a.loss)
        f = METHODS[method]
        if method == 'NAP': return f(N, ratio=ratio, floor=self.a.floor, epochs=[0, E], **kw)
        if method in ('AP', 'AL0'): return f(N, ratio=ratio, floor=self.a.floor, epochs=[0, E], **kw, **loss)
        if method == 'ALR': return f(self._dense_for_check(), ratio=ratio, epochs=[0, E], **kw, **loss)
        if method == 'CSTAR': return f(self._dense_for_check(), ratio=ratio, epochs=[0, E, E], **kw, **loss)
        if method == 'AQ': return f(bits=bits, epochs=[0, E], **kw, **loss)
        if method == 'ATMC':
            if bits is None: return f(N, ratio=ratio, floor=self.a.floor, epochs=[0, E, E], **kw, **loss)
            return f(N, ratio=ratio, bits=bits, floor=self.a.floor, epochs=[0, 0, 0, E], **kw, **loss)
        raise ValueError(method)

    def _dense_for_check(self): return get_model('lenet_atmc', self.data.info)

    def run_row(self, label, ratio) -> dict:
        method, bits = parse_method(label)
        row = dict(method=label, ratio='' if ratio is None else f"{ratio:g}", schedule=self.name, seed=self.a.seed,
                   device=str(self.device), torch=torch.__version__, bits=32 if bits is None else bits)
        train_s = 0.0
        if method == 'DA':
            model, s = self.dense(); train_s += s; stages_done = ['dense_adversarial']
        else:
            try:
                stages = self.stages(method, bits, ratio)
                from robustcompress_nb.solver import check_budget
                row['k'] = check_budget(n_dense=self.N, ratio=ratio)
            except ValueError as e:
                return {**row, 'status': 'infeasible', 'error': str(e)}
            if method == 'ATMC' and bits is not None:
                tag = f"atmc32_r{ratio:g}"
                start, s = self._cached(tag, lambda: self._atmc32(ratio))
            else:
                tag = f"dense_{'natural' if method == 'NAP' else 'adversarial'}"
                start, s = self.dense(natural=(method == 'NAP'))
            train_s += s
            try:
                model, sol, s = run_solver(start, self.data, stages, self.sched, self.a.seed, self.device, self.attack)
            except ValueError as e:   # e.g. a budget that a projection or transform cannot meet
                return {**row, 'status': 'infeasible', 'error': str(e), 'train_s': train_s}
            train_s += s
            stages_done = [f"{tag} > " + '+'.join(r['stage'] for r in sol.results)]   # the cached start, then this run's stages
            row['feasible'] = all(r['feasible'] is not False for r in sol.results[-1:])
            if method == 'ATMC' and bits is None:   # keep it for ATMC-b of the same ratio
                self.cache.mkdir(parents=True, exist_ok=True)
                p = self.cache / f"atmc32_r{ratio:g}.pt"
                if not p.exists(): tmp = p.with_suffix('.tmp'); torch.save(model, tmp); os.replace(tmp, p)
        row.update(measure(model, self.data, self.N, self.sched, self.a.seed, self.device))
        return {**row, 'status': 'ok', 'train_s': train_s, 'stages': '+'.join(stages_done)}

    def _atmc32(self, ratio):
        start, s0 = self.dense()
        model, _, s = run_solver(start, self.data, self.stages('ATMC', None, ratio), self.sched, self.a.seed,
                                 self.device, self.attack)
        return model, s0 + s


# ------------------------------------------------------------------------------------------------ plot
def plot(rows: list[dict], path: Path) -> list[Path]:
    "Clean and PGD-40 accuracy vs faithful CR (log x), one line per method; DA as a dashed horizontal line."
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    ok = [r for r in rows if r.get('status') == 'ok']
    if not ok: return []
    fig = make_subplots(rows=1, cols=2, subplot_titles=('clean accuracy (TA)', 'PGD-40 accuracy (ATA), eps 0.3'))
    methods = list(dict.fromkeys(r['method'] for r in ok))
    colors = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22']
    crs = [float(r['faithful_cr']) for r in ok if r['method'] != 'DA']
    for i, m in enumerate(methods):
        rs = sorted((r for r in ok if r['method'] == m), key=lambda r: float(r['faithful_cr']))
        c = colors[i % len(colors)]
        for col, field in ((1, 'clean_acc'), (2, 'pgd40_acc')):
            if m == 'DA' and crs:
                x = [min(crs), max(crs)]; y = [float(rs[0][field])] * 2
                fig.add_trace(go.Scatter(x=x, y=y, mode='lines', name='DA (dense, CR 1)', line=dict(dash='dash', color=c),
                                         legendgroup=m, showlegend=col == 1), row=1, col=col)
                continue
            fig.add_trace(go.Scatter(
                x=[float(r['faithful_cr']) for r in rs], y=[float(r[field]) for r in rs], mode='lines+markers', name=m,
                line=dict(color=c), legendgroup=m, showlegend=col == 1,
                text=[f"ratio {r['ratio']}, honest CR {float(r['honest_cr']):.2e}, FGSM {float(r['fgsm_acc']):.3f}" for r in rs],
                hovertemplate='CR %{x:.2e}<br>acc %{y:.3f}<br>%{text}'), row=1, col=col)
    sched = ', '.join(sorted({r['schedule'] for r in ok}))
    fig.update_xaxes(type='log', title_text='compression ratio (faithful, ATMC count)')
    fig.update_yaxes(range=[0, 1], title_text='accuracy')
    fig.update_layout(title=f"MNIST, LeNet (430,500 weights), eps 0.3: {sched} schedule", width=1100, height=480)
    out = [path.with_suffix('.html')]
    fig.write_html(out[0], include_plotlyjs='cdn')
    try:
        import kaleido  # noqa: F401
        fig.write_image(path.with_suffix('.png')); out.append(path.with_suffix('.png'))
    except Exception as e:  # no kaleido (or no browser for it): HTML only
        print(f"(no PNG: {type(e).__name__}: {str(e)[:120]})")
    return out


def table(rows):
    hdr = ['method', 'ratio', 'status', 'clean', 'PGD-40', 'FGSM', 'faithful CR', 'honest CR', 'train s', 'eval s']
    body = []
    for r in rows:
        f = lambda k, fmt: (fmt.format(float(r[k])) if r.get(k) not in (None, '') else '-')
        body.append([r['method'], r['ratio'] or '-', r['status'], f('clean_acc', '{:.3f}'), f('pgd40_acc', '{:.3f}'),
                     f('fgsm_acc', '{:.3f}'), f('faithful_cr', '{:.2e}'), f('honest_cr', '{:.2e}'),
                     f('train_s', '{:.0f}'), f('eval_s', '{:.0f}')])
    w = [max(len(str(x[i])) for x in [hdr] + body) for i in range(len(hdr))]
    return '\n'.join('| ' + ' | '.join(str(c).ljust(w[i]) for i, c in enumerate(x)) + ' |'
                     for x in [hdr, ['-' * n for n in w]] + body)


# ------------------------------------------------------------------------------------------------ main
def estimate_reduced(rows, sched_smoke, name='smoke') -> str:
    """Rough wall time of the REDUCED schedule (same device/threads), scaled from this run: seconds per adversarial
    training image-epoch (all Solver runs of this process, PGD-7 in both) and seconds per evaluated test image."""
    adv = [(e, s) for e, s in TIMINGS if e]
    ok = [r for r in rows if r.get('status') == 'ok' and r.get('eval_s')]
    if not adv or not ok: return ''
    red = SCHEDULES['reduced']
    per_img = sum(s for _, s in adv) / (sum(e for e, _ in adv) * sched_smoke['n_train'] * (sched_smoke['train_steps'] + 1))
    per_img *= red['train_steps'] + 1
    # evaluation: attacks only run on the examples the model classifies correctly, so the smoke run's barely trained
    # models under-state it; count a trained model's cost instead: PGD-40 (40 forward+backward) + FGSM (1) + ~3 forwards,
    # at the training pass cost (an upper-ish bound: attack passes need no weight gradients)
    ev_img = per_img / (red['train_steps'] + 1) * 44
    ep = {'AP': 1, 'AL0': 1, 'ALR': 1, 'ATMC-32': 2, 'ATMC-8': 1, 'CSTAR': 2}   # adversarial stage-epochs / ratio
    n_r = len(RATIOS)
    stage_epochs = red['stage_epochs'] * (n_r * sum(ep.values()) - 2 * (ep['ALR'] + ep['CSTAR']))  # ALR, CSTAR infeasible at 1e-3, 3e-3
    train = stage_epochs * red['n_train'] * per_img
    dense = red['dense_epochs'] * red['n_train'] * per_img
    n_rows = 1 + n_r * (len(ALL_METHODS) - 1) - 4
    ev = n_rows * red['n_test'] * ev_img
    return (f"estimated REDUCED schedule, one process with this run's threads: {stage_epochs} adversarial stage-epochs "
            f"x {red['n_train']} images {train / 3600:.2f} h + dense pretraining {dense / 3600:.2f} h + {n_rows} evaluations "
            f"x {red['n_test']} images {ev / 3600:.2f} h = {(train + dense + ev) / 3600:.1f} h "
            f"(from {per_img * 1e3:.2f} ms per training image-epoch with PGD-{red['train_steps']} measured here and {ev_img * 1e3:.1f} ms "
            f"per test image (PGD-40 + FGSM on a trained model, scaled from the training pass); NAP's natural epochs neglected)")


def main(argv=None):
    a = parse_args(argv)
    name = 'full' if a.full else 'smoke' if a.smoke else 'reduced'
    sched = dict(SCHEDULES[name])
    for k in ('n_train', 'n_test', 'dense_epochs', 'stage_epochs', 'train_steps'):
        if getattr(a, k) is not None: sched[k] = getattr(a, k)
    out = Path(a.out) if a.out else RESULTS / f"reproduce_mnist{'' if name == 'reduced' else '_' + name}.csv"
    if sched != SCHEDULES[name]:   # overridden: its own schedule tag (resume key) and its own model cache
        import hashlib
        name = f"{name}-{hashlib.sha1(json.dumps(sched, sort_keys=True).encode()).hexdigest()[:6]}"
    if a.plot_only:
        rows = read_rows(out)
        print(table(rows)); print('plot:', *map(str, plot(rows, out)))
        return rows
    root = a.root or os.environ.get('RCNB_DATA')
    if not root: raise SystemExit("reproduce_mnist.py: give --root or set RCNB_DATA (a folder with MNIST/raw/...)")
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else
                          ('cpu' if a.device == 'auto' else a.device))
    methods = a.methods or (['AP', 'ATMC-8'] if a.smoke else list(ALL_METHODS))
    ratios = a.ratios or ([0.01] if a.smoke else list(RATIOS))
    for r in ratios:
        if not 0 < r < 1: raise SystemExit(f"--ratios must be in (0, 1), got {r}")
    for m in methods: parse_method(m)
    data = get_data('mnist', root=root, n_train=sched['n_train'], n_test=sched['n_test'],
                    batch_size=sched['batch_size'], seed=a.seed)
    cache = Path(a.cache) if a.cache else out.parent / f"{out.stem}_cache" / name
    runner = Runner(a, sched, name, data, device, cache)
    done = {key(r['method'], r['ratio'] or None, r['schedule']) for r in read_rows(out)}
    todo = [(m, None) if parse_method(m)[0] in ('DA', 'AQ') else (m, r) for m in methods for r in ratios]
    todo = list(dict.fromkeys(todo))
    print(f"{name} schedule {json.dumps(sched)}; device {device}, {torch.get_num_threads()} thread(s); "
          f"{len(todo)} rows -> {out}", flush=True)
    t_all = time.perf_counter()
    for m, r in todo:
        if key(m, r, name) in done: print(f"  skip {m} ratio {r} (in {out.name})"); continue
        t0 = time.perf_counter()
        row = runner.run_row(m, r)
        append_row(out, row)
        print(f"  {m:8s} ratio {r!s:6s} {row['status']:10s} clean {row.get('clean_acc', float('nan')):.3f} "
              f"PGD-40 {row.get('pgd40_acc', float('nan')):.3f} faithful CR {row.get('faithful_cr', float('nan')):.2e} "
              f"({time.perf_counter() - t0:.0f} s){'  ' + row['error'][:100] if row.get('error') else ''}", flush=True)
    rows = [x for x in read_rows(out) if x['schedule'] == name]
    print(f"\nwall time of this invocation: {time.perf_counter() - t_all:.0f} s\n")
    print(table(rows))
    if not a.no_plot: print('plot:', *map(str, plot(rows, out)))
    if a.smoke: print(estimate_reduced(rows, sched, name))
    return rows


if __name__ == '__main__':
    main()
