"""PGD speed and accuracy: robustcompress_nb.attacks.pgd against foolbox 3.3.4's LinfPGD, same model, same inputs.

    python benchmarks/attack_speed.py                         # digits, small_cnn trained briefly here (CPU, ~1 min)
    python benchmarks/attack_speed.py --data mnist --root /path/to/data   # MNIST, lenet5 (or RCNB_DATA=...)

Both attacks run L-infinity PGD with `--steps` steps of size `--alpha` on the same `--n` inputs in batches of
`--batch-size`, on the same device, with the model in eval mode:

* without random start (BIM), where both are deterministic and must give the same adversarial examples,
  hence the same accuracy, and the run is timed (`--repeats` runs each, interleaved after one warm-up run; the
  table shows the minimum, the least disturbed by other processes, and the median);
* with random start, where both are random variables: their accuracies are reported (not timed).

Prints a table and writes benchmarks/results/attack_speed_<data>.json and .csv. digits has only 360 test
images: to attack `--n` = 1000 inputs the script uses the test split followed by training images (the inputs
are only a workload here; the clean accuracy on them is reported).
"""
import argparse
import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustcompress_nb.attacks import pgd
from robustcompress_nb.data import get_data
from robustcompress_nb.models import get_model

from _bench import sync

RESULTS = Path(__file__).resolve().parent / 'results'


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default='digits', choices=['digits', 'mnist', 'fashion_mnist'])
    p.add_argument('--root', default=None, help='data folder (default: $RCNB_DATA); unused for digits')
    p.add_argument('--model', default=None, help='model name (default: small_cnn for digits, lenet5 otherwise)')
    p.add_argument('--n', type=int, default=1000, help='inputs to attack')
    p.add_argument('--batch-size', type=int, default=250)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--eps', type=float, default=None, help="budget (default: the data set's standard eps)")
    p.add_argument('--alpha', type=float, default=None, help='step size (default: 2.5 * eps / steps)')
    p.add_argument('--epochs', type=int, default=3, help='natural training epochs of the model')
    p.add_argument('--repeats', type=int, default=5, help='timed runs per implementation')
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    p.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=str(RESULTS))
    return p.parse_args(argv)


def train(model, loader, epochs, device):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3 if epochs > 3 else 3e-3)
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    return model


def inputs(data, n):
    xs, ys, k = [], [], 0
    for loader in (data.test, data.train):
        for xb, yb in loader:
            xs.append(xb[:n - k]); ys.append(yb[:n - k]); k += len(xs[-1])
            if k >= n: return torch.cat(xs), torch.cat(ys)
    return torch.cat(xs), torch.cat(ys)


def batched(fn, x, y, bs):
    return torch.cat([fn(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)])


def accuracy(model, x, y, bs):
    with torch.no_grad():
        return sum(int((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum()) for i in range(0, len(x), bs)) / len(x)


def main(argv=None):
    a = parse_args(argv)
    import foolbox as fb
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    torch.manual_seed(a.seed)
    data = get_data(a.data, root=a.root, seed=a.seed)
    model_name = a.model or ('small_cnn' if a.data == 'digits' else 'lenet5')
    eps = a.eps if a.eps is not None else data.info.eps
    alpha = a.alpha if a.alpha is not None else 2.5 * eps / a.steps
    t0 = time.perf_counter()
    model = train(get_model(model_name, data.info).to(device), data.train, a.epochs, device)
    t_train = time.perf_counter() - t0
    x, y = inputs(data, a.n)
    x, y = x.to(device), y.to(device)
    bs = a.batch_size

    ours = lambda xb, yb: pgd(model, xb, yb, eps=eps, alpha=alpha, steps=a.steps, random_start=False)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1), device=device)
    fb_attack = fb.attacks.LinfPGD(abs_stepsize=alpha, steps=a.steps, random_start=False)
    peer = lambda xb, yb: fb_attack(fmodel, xb, yb, epsilons=eps)[1]

    def timed(fn):
        sync(device); t = time.perf_counter()
        out = batched(fn, x, y, bs)
        sync(device)
        return time.perf_counter() - t, out

    timed(ours); timed(peer)                          # warm-up (allocator, kernels, lazy imports)
    t_ours, t_peer = [], []
    for _ in range(a.repeats):                        # interleaved, so background load hits both alike
        t, x_ours = timed(ours); t_ours.append(t)
        t, x_peer = timed(peer); t_peer.append(t)
    max_diff = (x_ours - x_peer).abs().max().item()
    acc_clean = accuracy(model, x, y, bs)
    acc_ours, acc_peer = accuracy(model, x_ours, y, bs), accuracy(model, x_peer, y, bs)
    identical = bool(torch.equal(x_ours, x_peer))

    # with random start: both random; report the accuracies (seeded)
    torch.manual_seed(a.seed)
    g = torch.Generator(device=device).manual_seed(a.seed)
    x_ours_rs = batched(lambda xb, yb: pgd(model, xb, yb, eps=eps, alpha=alpha, steps=a.steps, generator=g), x, y, bs)
    fb_rs = fb.attacks.LinfPGD(abs_stepsize=alpha, steps=a.steps, random_start=True)
    x_peer_rs = batched(lambda xb, yb: fb_rs(fmodel, xb, yb, epsilons=eps)[1], x, y, bs)
    acc_ours_rs, acc_peer_rs = accuracy(model, x_ours_rs, y, bs), accuracy(model, x_peer_rs, y, bs)

    med_o, med_p = statistics.median(t_ours), statistics.median(t_peer)
    min_o, min_p = min(t_ours), min(t_peer)
    res = dict(
        data=a.data, model=model_name, n=len(x), batch_size=bs, eps=eps, alpha=alpha, steps=a.steps,
        device=str(device), threads=torch.get_num_threads(), repeats=a.repeats, train_epochs=a.epochs,
        train_seconds=round(t_train, 2), clean_acc=acc_clean,
        time_ours_s=min_o, time_peer_s=min_p, ratio_ours_over_peer=min_o / min_p,
        median_time_ours_s=med_o, median_time_peer_s=med_p, median_ratio=med_o / med_p,
        times_ours_s=t_ours, times_peer_s=t_peer,
        acc_ours=acc_ours, acc_peer=acc_peer, identical_x_adv=identical, max_abs_diff=max_diff,
        acc_ours_random_start=acc_ours_rs, acc_peer_random_start=acc_peer_rs,
        peer='foolbox ' + fb.__version__ + ' LinfPGD(abs_stepsize, random_start=False)',
        torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
        cpu_count=os.cpu_count(), load_avg_1min=os.getloadavg()[0] if hasattr(os, 'getloadavg') else None,
    )
    print(f"PGD-{a.steps} (Linf eps={eps:g}, alpha={alpha:g}) on {len(x)} {a.data} inputs, {model_name} "
          f"(clean {acc_clean:.1%}), batch {bs}, {device}, {torch.get_num_threads()} threads, {a.repeats} timed runs each")
    hdr = ['', 'time ours [s]', 'time foolbox [s]', 'ratio ours/foolbox', 'acc ours', 'acc foolbox']
    rows = [['no random start, min', f"{min_o:.3f}", f"{min_p:.3f}", f"{min_o / min_p:.2f}", f"{acc_ours:.1%}", f"{acc_peer:.1%}"],
            ['no random start, median', f"{med_o:.3f}", f"{med_p:.3f}", f"{med_o / med_p:.2f}", '', ''],
            ['random start (seeded)', '', '', '', f"{acc_ours_rs:.1%}", f"{acc_peer_rs:.1%}"]]
    w = [max(len(str(r[i])) for r in [hdr] + rows) for i in range(len(hdr))]
    for r in [hdr] + rows: print(' | '.join(str(c).ljust(w[i]) for i, c in enumerate(r)))
    print(f"identical adversarial examples without random start: {identical} (max |diff| {max_diff:.2e})")

    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    stem = out / f"attack_speed_{a.data}"
    stem.with_suffix('.json').write_text(json.dumps(res, indent=1) + '\n')
    flat = {k: v for k, v in res.items() if not isinstance(v, list)}
    with open(stem.with_suffix('.csv'), 'w', newline='') as f:
        wr = csv.DictWriter(f, fieldnames=list(flat)); wr.writeheader(); wr.writerow(flat)
    print(f"wrote {stem.with_suffix('.json')} and .csv")
    return res


if __name__ == '__main__':
    main()
