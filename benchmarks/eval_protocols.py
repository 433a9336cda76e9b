"""What the evaluation protocols cost and what they find: `teaching` (FGSM + PGD, an upper bound), `aa-fast` (the
cheap AA-grade protocol) and `standard` (AutoAttack's standard suite + PGD-40), side by side on the same models and
the same test examples, with their wall times, on one CPU thread.

    python benchmarks/eval_protocols.py                          # digits: adversarially trained small_cnn + ATMC-8 at 1%
    python benchmarks/eval_protocols.py --root /path/to/data     # + MNIST LeNet-5 (adversarially trained here), or RCNB_DATA

The models are trained here with the package's own pipeline (`train.fit` for the dense ones, `experiments.run_method`
for ATMC-8, continuing from the dense digits model) and cached as state dicts under --cache (default
benchmarks/results/eval_protocols_*.safetensors, `cli.save_dense`: safetensors, reading runs no code); the ATMC model is cached merged
(`layers.atmc_merge`: W = UV + C as plain layers, the same function). Delete a file to retrain its model.

Every protocol runs on the first --n test examples (--n-mnist for MNIST) with seed 0; `aa-fast` also runs its masking
diagnostics (their time is reported apart: `attack s` is the wall time of the protocol's attacks only; `cpu s` its
process CPU time, which a busy machine does not inflate; `diag s` the wall time of aa-fast's diagnostics). Prints a table and writes
benchmarks/results/eval_protocols.csv and .json; the JSON also holds every full result (`evaluate_protocol`'s dict).
"""
import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

import torch

from robustcompress_nb.attacks import PGD
from robustcompress_nb.cli import save_dense, load_dense
from robustcompress_nb.data import get_data
from robustcompress_nb.evaluation import evaluate_protocol, get_protocol
from robustcompress_nb.experiments import run_method
from robustcompress_nb.layers import atmc_merge
from robustcompress_nb.models import get_model
from robustcompress_nb.train import fit

RESULTS = Path(__file__).resolve().parent / 'results'
PROTOCOLS = ('teaching', 'aa-fast', 'standard')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--root', default=os.environ.get('RCNB_DATA'), help='data folder with MNIST (default: $RCNB_DATA); '
                   'without it only the digits models run')
    p.add_argument('--n', type=int, default=200, help='digits test examples per protocol (at most 360)')
    p.add_argument('--n-mnist', type=int, default=100, help='MNIST test examples per protocol')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    p.add_argument('--cache', default=str(RESULTS), help='folder of the cached models')
    p.add_argument('--out', default=str(RESULTS / 'eval_protocols'), help='results stem (.csv and .json)')
    return p.parse_args(argv)


def cached(path: Path, build, make):
    "The model `make()` loaded from `path` if it exists, else `build()` trained and saved there."
    model = make()
    if path.exists():
        model.load_state_dict(load_dense(path)[1])
        return model.eval(), False
    trained = build()
    model.load_state_dict(trained.state_dict())
    save_dense(path, model, {'cached_by': 'benchmarks/eval_protocols.py', 'file': path.name})
    return model.eval(), True


def adv_train(name, data, epochs, lr, eps_warmup):
    "Madry adversarial training with PGD-7 (alpha 2.5 eps / 7), Adam, cosine schedule."
    eps = data.info.eps
    model = get_model(name, data.info, seed=0)
    fit(model, data.train, epochs=epochs, loss='adversarial', attack=PGD(eps, 2.5 * eps / 7, 7), opt='adam', lr=lr,
        schedule='cosine', eps_warmup=eps_warmup, seed=0)
    return model.eval()


def atmc8(data, dense):
    "ATMC-8 at 1% of the weights, continuing from `dense` (sparse, factorized and quantize stages, 3 epochs each)."
    row, model = run_method('atmc', data, 'small_cnn', ratio=0.01, bits=8, epochs=3, pretrained=dense,
                            n_eval=50, return_model=True, seed=0)
    merged = atmc_merge(model.cpu()).eval()
    x = next(iter(data.test))[0]
    with torch.no_grad(): assert torch.allclose(merged(x), model(x), atol=1e-4), 'atmc_merge changed the function'
    return merged


def models(args):
    "(case name, data, model, trained here?) for every case that can run."
    cache = Path(args.cache)
    digits = get_data('digits', batch_size=64)
    small = lambda: get_model('small_cnn', digits.info, seed=0)
    dense, t1 = cached(cache / 'eval_protocols_digits_small_cnn_at.safetensors', lambda: adv_train('small_cnn', digits, 10, 1e-2, 0), small)
    yield 'digits small_cnn AT', digits, dense, t1
    atmc, t2 = cached(cache / 'eval_protocols_digits_small_cnn_atmc8_1pct.safetensors', lambda: atmc8(digits, dense), small)
    yield 'digits small_cnn ATMC-8 1%', digits, atmc, t2
    if args.root:
        mnist = get_data('mnist', root=args.root, n_train=12000, batch_size=128)
        lenet, t3 = cached(cache / 'eval_protocols_mnist_lenet5_at.safetensors', lambda: adv_train('lenet5', mnist, 4, 2e-3, 1),
                           lambda: get_model('lenet5', mnist.info, seed=0))
        yield 'mnist lenet5 AT', mnist, lenet, t3


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows, full = [], []
    t0 = time.perf_counter()
    for case, data, model, trained in models(args):
        eps, n = data.info.eps, args.n if data.info.name == 'digits' else args.n_mnist
        print(f"{case}: {'trained' if trained else 'loaded from the cache'} ({time.perf_counter() - t0:.0f} s so far)", flush=True)
        for name in PROTOCOLS:
            r = evaluate_protocol(model, data.test, get_protocol(name, eps, n_examples=n), diagnostics=name == 'aa-fast')
            full.append(dict(case=case, result=dict(r)))
            rows.append(dict(case=case, data=data.info.name, eps=eps, n=r['n'], protocol=name, version=r['protocol_version'],
                             clean_acc=r['clean_acc'], headline=r['headline'], acc=r[r['headline']],
                             attack_seconds=round(r['seconds_attacks'], 2),
                             cpu_seconds=round(r['cpu_seconds_attacks'], 2),
                             diag_seconds=round(r['seconds_diagnostics'], 2) if r['diagnostics'] else None,
                             masked=r['masked'] if r['diagnostics'] else None, masking_flags=';'.join(r['masking_flags']),
                             per_attack=json.dumps({k: round(v, 4) for k, v in r['attack_acc'].items()}),
                             protocol_text=r['protocol_text']))
            print(f"  {r!r}".replace('\n', '\n  '), flush=True)
    compare(rows)
    write(rows, full, args, time.perf_counter() - t0)


def compare(rows):
    """Per case: each protocol against standard: points of accuracy, and the ratio of their attacks' times (wall, and
    process CPU time, which other processes on a busy machine do not inflate)."""
    by = {(r['case'], r['protocol']): r for r in rows}
    for r in rows:
        s = by[r['case'], 'standard']
        r['minus_standard_pts'] = round(100 * (r['acc'] - s['acc']), 2)
        r['time_vs_standard'] = round(r['attack_seconds'] / s['attack_seconds'], 4)
        r['cpu_vs_standard'] = round(r['cpu_seconds'] / s['cpu_seconds'], 4)
    print(f"\n{'case':28} {'protocol':9} {'n':>4} {'clean':>6} {'headline':>19} {'acc':>6} {'-std pts':>8} "
          f"{'attack s':>8} {'x std':>6} {'cpu s':>6} {'x std':>6} {'diag s':>6}  masked")
    for r in rows:
        print(f"{r['case']:28} {r['protocol']:9} {r['n']:4d} {r['clean_acc']:6.1%} {r['headline']:>19} {r['acc']:6.1%} "
              f"{r['minus_standard_pts']:+8.1f} {r['attack_seconds']:8.1f} {r['time_vs_standard']:6.3f} "
              f"{r['cpu_seconds']:6.1f} {r['cpu_vs_standard']:6.3f} "
              f"{'' if r['diag_seconds'] is None else format(r['diag_seconds'], '6.1f'):>6}  "
              f"{'' if r['masked'] is None else r['masked']} {r['masking_flags']}")


def write(rows, full, args, seconds):
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix('.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader(); w.writerows(rows)
    meta = dict(command='python benchmarks/eval_protocols.py' + (' --root DATA' if args.root else ''), threads=args.threads,
                torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
                total_seconds=round(seconds, 1))
    out.with_suffix('.json').write_text(json.dumps(dict(meta=meta, rows=rows, results=full), indent=1))
    print(f"\nwrote {out.with_suffix('.csv')} and .json ({seconds:.0f} s in all)")


if __name__ == '__main__':
    main()
