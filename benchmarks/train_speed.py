"""Cost of adversarial training: one epoch of PGD-7 adversarial training of LeNet-5 on 10,000 MNIST images
against one plain (natural) epoch, both with robustcompress_nb.train.Trainer.

    python benchmarks/train_speed.py --root /path/to/data        # or RCNB_DATA=/path/to/data
    python benchmarks/train_speed.py --threads 1 --repeats 3     # pin threads, take the min of 3 epochs each

What is timed: `Trainer.fit()` for exactly one epoch (`--n-train` images, batches of `--batch-size`), data
already in memory, model on `--device`, after a warm-up (a few batches of each mode, so one-time costs such as
kernel selection and lazy imports are not counted). The two modes are interleaved `--repeats` times (background
load hits both alike); the table shows the minimum (least disturbed) and the median. Each run starts from the
same initial weights and seed.

Expectation: a PGD-k step costs about k+1 forward/backward passes instead of 1 (k passes to craft the attack,
one to train on it), so PGD-7 training should cost about 8x a natural epoch. The attack's backward passes only
need gradients with respect to the input (no weight-gradient kernels), and the natural epoch also pays the
optimizer step and data handling, which pulls the measured ratio somewhat below 8; per-step bookkeeping of the
attack (random start, projection, input checks) pushes it up. The script also times the attack alone (its share
of the adversarial epoch) to make that split visible.

Prints a table and writes benchmarks/results/train_speed.json.
"""
import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from robustcompress_nb.attacks import PGD
from robustcompress_nb.data import get_data
from robustcompress_nb.models import get_model, count_weights
from robustcompress_nb.train import Trainer

from _bench import StopAfter, sync

RESULTS = Path(__file__).resolve().parent / 'results'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default='mnist', choices=['mnist', 'fashion_mnist'])
    p.add_argument('--root', default=None, help='data folder (default: $RCNB_DATA)')
    p.add_argument('--model', default='lenet5')
    p.add_argument('--n-train', type=int, default=10_000, help='training images in the epoch')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--steps', type=int, default=7, help='PGD steps of the adversarial epoch')
    p.add_argument('--eps', type=float, default=None, help="budget (default: the data set's, 0.3 for MNIST)")
    p.add_argument('--alpha', type=float, default=None, help='PGD step size (default: 2.5 * eps / steps)')
    p.add_argument('--repeats', type=int, default=2, help='timed epochs per mode (interleaved)')
    p.add_argument('--warmup-batches', type=int, default=5, help='untimed batches of each mode first')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--device', default='cpu', help="cpu, cuda, or 'auto' (CUDA when available)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=str(RESULTS))
    return p.parse_args(argv)


class TimedAttack:
    "Wraps an attack spec and adds up the seconds spent in it."
    def __init__(self, attack, device):
        self.attack, self.device, self.seconds = attack, device, 0.0
        self.eps, self.alpha, self.protocol, self.name = attack.eps, attack.alpha, attack.protocol, attack.name

    def __call__(self, model, x, y):
        sync(self.device); t = time.perf_counter()
        out = self.attack(model, x, y)
        sync(self.device); self.seconds += time.perf_counter() - t
        return out


def main(argv=None):
    a = parse_args(argv)
    root = a.root or os.environ.get('RCNB_DATA')
    if not root: raise SystemExit("train_speed.py: give --root or set RCNB_DATA (a folder with MNIST/raw/...)")
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device('cuda' if a.device == 'auto' and torch.cuda.is_available() else
                          ('cpu' if a.device == 'auto' else a.device))
    data = get_data(a.data, root=root, n_train=a.n_train, batch_size=a.batch_size, seed=a.seed)
    eps = a.eps if a.eps is not None else data.info.eps
    attack = PGD(eps=eps, alpha=a.alpha, steps=a.steps)   # alpha None: 2.5 eps / steps
    init = get_model(a.model, data.info, seed=a.seed).state_dict()

    def run(mode, n_batches=None):
        "One epoch (or `n_batches` steps) of `mode`; returns (seconds, trainer, timed attack)."
        model = get_model(a.model, data.info)
        model.load_state_dict(init)
        atk = TimedAttack(attack, device) if mode == 'adversarial' else None
        cbs = [StopAfter(n_batches)] if n_batches else []
        t = Trainer(model, data.train, epochs=1, loss=mode, attack=atk, lr=0.01, momentum=0.9,
                    device=device, seed=a.seed, callbacks=cbs)
        sync(device); t0 = time.perf_counter()
        t.fit()
        sync(device)
        return time.perf_counter() - t0, t, atk

    for mode in ('natural', 'adversarial'): run(mode, a.warmup_batches)      # warm-up
    times = {'natural': [], 'adversarial': []}
    attack_s, last = [], {}
    for _ in range(a.repeats):
        for mode in ('natural', 'adversarial'):
            s, t, atk = run(mode)
            times[mode].append(s); last[mode] = t
            if atk is not None: attack_s.append(atk.seconds)

    n = data.info.n_train
    best = {m: min(v) for m, v in times.items()}
    med = {m: statistics.median(v) for m, v in times.items()}
    ratio, ratio_med = best['adversarial'] / best['natural'], med['adversarial'] / med['natural']
    attack_share = attack_s[times['adversarial'].index(best['adversarial'])] / best['adversarial']
    res = dict(
        data=a.data, model=a.model, n_weights=count_weights(get_model(a.model, data.info)), n_train=n,
        batch_size=a.batch_size, steps_per_epoch=len(data.train), attack=attack.protocol, device=str(device),
        threads=torch.get_num_threads(), repeats=a.repeats, warmup_batches=a.warmup_batches,
        seconds_per_epoch={m: best[m] for m in best}, median_seconds_per_epoch=med,
        images_per_second={m: n / best[m] for m in best}, times_s=times,
        ratio_adversarial_over_natural=ratio, median_ratio=ratio_med,
        expected_ratio=a.steps + 1, attack_share_of_adversarial_epoch=attack_share,
        train_loss={m: last[m].history.epochs[-1]['train_loss'] for m in last},
        train_acc_natural=last['natural'].history.epochs[-1].get('train_acc'),
        train_adv_acc_adversarial=last['adversarial'].history.epochs[-1].get('train_adv_acc'),
        torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
        cpu_count=os.cpu_count(), load_avg_1min=os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
    )
    print(f"one epoch of {a.model} ({res['n_weights']:,} weights) on {n} {a.data} images, batch {a.batch_size} "
          f"({len(data.train)} steps), {device}, {torch.get_num_threads()} thread(s); min (median) of {a.repeats} epochs each")
    hdr = ['training', 's / epoch', 'images / s', 'ratio']
    rows = [['natural', f"{best['natural']:.2f} ({med['natural']:.2f})", f"{n / best['natural']:.0f}", '1.00'],
            [f"adversarial, PGD-{a.steps} (eps {eps:g}, alpha {attack.alpha:.4g})",
             f"{best['adversarial']:.2f} ({med['adversarial']:.2f})", f"{n / best['adversarial']:.0f}",
             f"{ratio:.2f} ({ratio_med:.2f})"]]
    w = [max(len(str(r[i])) for r in [hdr] + rows) for i in range(len(hdr))]
    for r in [hdr, ['-' * x for x in w]] + rows: print(' | '.join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    print(f"expected about {a.steps + 1}x ({a.steps} attack passes + 1 training pass); the attack takes "
          f"{attack_share:.0%} of the adversarial epoch")
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out / 'train_speed.json').write_text(json.dumps(res, indent=1) + '\n')
    print(f"wrote {out / 'train_speed.json'}")
    return res


if __name__ == '__main__':
    main()
