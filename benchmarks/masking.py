"""Why sparse compressed models mask gradients here, and what fixes it (issue 10, section 2).

ATMC-8 at a small budget on the paper's LeNet (MNIST, eps 0.3) or on the digits' small CNN: the model is trained
with the package's own pipeline (`experiments.run_method`, from a shared dense adversarial start) once per `floor`
(the solver's per-tensor minimum of kept weights; 0 is the faithful method) and measured:
- `evaluate_protocol` under `aa-fast` (PGD, APGD-CE, APGD-T, Square in cascade) with the masking diagnostics: what each
  attack broke that the earlier ones missed, in particular Square after every gradient attack;
- dead units per layer (`evaluation.dead_units`): output filters/rows of the deployed weights that are all zero;
- max-pool ties (`evaluation.pool_ties`): the fraction of pooling windows (over the test images) whose non-zero
  maximum is attained by two or more entries;
- exactly zero input gradients (every ReLU path off: the loss is locally constant), at the clean points and at
  PGD's end points, among the points that survived the gradient attacks;
- the pooling hypothesis tested: PGD and APGD-CE run on a copy whose max-pools are smooth (softmax-weighted,
  `evaluation.smooth_pools`), their examples checked on the real model (a transfer attack), on the points that survived every
  gradient attack on the real model.

    python benchmarks/masking.py --root /work/shared/data                    # MNIST LeNet (dense from reproduce_mnist --quick)
    python benchmarks/masking.py --data digits --keep 0.002 --floors 0 5 --epochs 0 3 3 3   # digits small_cnn (tutorial 6)

Prints one JSON line per model and writes them to benchmarks/results/masking_<data>.json (--out: another stem).
Tutorial 6 (nbs/tutorials/06_masking.ipynb) runs the digits case step by step.
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

from robustcompress_nb.data import get_data
from robustcompress_nb.experiments import recipe, train_method
from robustcompress_nb.models import get_model
from robustcompress_nb.solver import Budget
from robustcompress_nb.layers import atmc_merge
from robustcompress_nb.attacks import PGD
from robustcompress_nb.cli import load_dense
from robustcompress_nb.evaluation import dead_units, pool_ties, smooth_pools

RESULTS = Path(__file__).resolve().parent / 'results'
SGD = dict(momentum=0.9, weight_decay=5e-4)


def transfer(model, smooth, x, y, eps, steps=100):
    "Points of (x, y) broken on `model` by PGD-`steps` and APGD-CE computed on `smooth` (the real model judges)."
    from robustcompress_nb.evaluation import _aa_stage   # APGD-CE with the standard settings
    broken = torch.zeros(len(y), dtype=torch.bool)
    for a in (PGD(eps, steps=steps), _aa_stage(eps, 'Linf', 'apgd-ce', 100)):
        xa = a(smooth.eval(), x, y)
        with torch.no_grad(): broken |= model.eval()(xa).argmax(1) != y
    return broken


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--data', default='mnist', choices=['mnist', 'digits'])
    p.add_argument('--root', default=os.environ.get('RCNB_DATA'))
    p.add_argument('--keep', type=float, default=0.01)
    p.add_argument('--bits', type=int, default=8)
    p.add_argument('--floors', type=int, nargs='+', default=[0, 2, 5])
    p.add_argument('--n-train', type=int, default=5000)
    p.add_argument('--n-test', type=int, default=200)
    p.add_argument('--epochs', type=int, nargs='+', default=[0, 1, 1, 1], help='ATMC stage epochs (dense first)')
    p.add_argument('--dense', default=None, help='a dense model file (cli.save_dense); mnist default: reproduce_mnist --quick cache')
    p.add_argument('--dense-epochs', type=int, default=10, help='digits: epochs of the dense model trained here')
    p.add_argument('--beta', type=float, default=20.0, help='sharpness of the smooth pools (evaluation.smooth_pools)')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--out', default=None)
    p.add_argument('--save-dir', default=None, help='also save each compressed model (merged state_dict) there')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    mnist = a.data == 'mnist'
    data = get_data(a.data, root=a.root, n_train=a.n_train if mnist else None, n_test=a.n_test if mnist else None,
                    batch_size=64, seed=0)
    model_name = 'lenet_atmc' if mnist else 'small_cnn'
    eps = data.info.eps
    attack = recipe(data).train_attack(eps)
    protocol = recipe(data).eval_protocol(eps, a.n_test)
    dense = get_model(model_name, data.info, seed=0)
    if mnist:
        path = a.dense or next((RESULTS / 'reproduce_mnist_aa_quick_cache' / 'quick').glob('dense_*.safetensors'))
        dense.load_state_dict(load_dense(path)[1])
    else:
        dense = train_method('da', dense, Budget(), data, attack=attack, epochs=a.dense_epochs, lr=0.05, **SGD).model
    x, y = (torch.cat(t) for t in zip(*data.test)); x, y = x[:a.n_test], y[:a.n_test]
    print(f"{a.data} {model_name}, eps {eps}, ATMC-{a.bits} keep {a.keep}, epochs {a.epochs}; protocol: {protocol.describe()}", flush=True)
    from robustcompress_nb.evaluation import _named_attacks, _run_stages
    attacks = _named_attacks(list(protocol.attacks))
    out = Path(a.out) if a.out else RESULTS / f"masking_{a.data}"
    rows = [dict(case='dense', floor=None, dead=dead_units(dense), ties=pool_ties(dense, x))]
    print(json.dumps(rows[0]), flush=True)
    for floor in a.floors:
        t0 = time.perf_counter()
        tr = train_method('atmc', get_model(model_name, data.info, seed=0), Budget(keep=a.keep, bits=a.bits), data, attack=attack,
                          epochs=a.epochs, pretrained=dense, lr=0.01, floor=floor, **SGD)
        plain = atmc_merge(tr.model).eval()
        # the protocol's cascade (PGD, APGD-CE, APGD-T, then Square on what they all missed), per point
        torch.manual_seed(0)
        ok, alive, acc, broken, secs, killed = _run_stages(plain, x, y, attacks, True, 500)
        grad_alive = alive | killed[list(attacks)[-1]]          # survivors of every gradient attack
        i = grad_alive.nonzero().squeeze(1)
        tb = transfer(plain, smooth_pools(plain, a.beta), x[i], y[i], eps) if len(i) else torch.zeros(0, dtype=torch.bool)
        sq_hit = killed[list(attacks)[-1]][i]                      # of those, broken by Square
        # exactly zero input gradients (a locally constant loss: every ReLU path off) at the clean points and after PGD
        from robustcompress_nb.attacks import input_grad
        zero = lambda xx, yy: (input_grad(plain, xx, yy)[1].flatten(1).abs().sum(1) == 0) if len(yy) else torch.zeros(0, dtype=torch.bool)
        z_clean = zero(x[i], y[i])
        xp = PGD(eps, steps=40)(plain, x[i], y[i]) if len(i) else x[i]
        z_pgd = zero(xp, y[i])
        if a.save_dir: torch.save(plain.state_dict(), Path(a.save_dir) / f"{a.data}_keep{a.keep}_floor{floor}.pt")
        r = dict(case=f"ATMC-{a.bits} floor {floor}", floor=floor, n=len(y), clean=float(ok.float().mean()),
                 attack_acc={k: round(v, 4) for k, v in acc.items()}, broken=broken, robust=float(alive.float().mean()),
                 grad_survivors=len(i), square_broke=int(sq_hit.sum()), smooth_transfer_broke=int(tb.sum()),
                 smooth_transfer_broke_of_square=int((tb & sq_hit).sum()),
                 zero_grad_clean=int(z_clean.sum()), zero_grad_after_pgd=int(z_pgd.sum()),
                 zero_grad_after_pgd_of_square=int((z_pgd & sq_hit).sum()), nnz=sum(d['nnz'] for d in dead_units(plain).values()),
                 dead=dead_units(plain), ties=pool_ties(plain, x), seconds=round(time.perf_counter() - t0))
        rows.append(r)
        print(json.dumps(r), flush=True)
        out.with_suffix('.json').write_text(json.dumps(dict(args=vars(a), protocol=protocol.describe(), rows=rows), indent=1))   # after each model
    return rows


if __name__ == '__main__':
    main()
