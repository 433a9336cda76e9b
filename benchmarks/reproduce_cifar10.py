"""CIFAR-10 robust compression (issue 13, items 4 and 5): every method of the registry (DA, NAP, AP, AL0, ALR, ATMC-32,
ATMC-8, CSTAR, HYDRA) keeping 10%, 5% and 1% of the dense weights (unstructured 90/95/99% for the pruning methods, the
same number of parameters for the low-rank ones), L-inf eps 8/255, fast adversarial training (FGSM with a random start,
Wong, Rice and Kolter 2020, guarded against catastrophic overfitting), equal total training budgets, clean and robust
accuracy under an AutoAttack-grade protocol, against the honest compression ratio (index costs included).

    python benchmarks/reproduce_cifar10.py --root /work/shared/data                  # REDUCED schedule (CPU, cifar_small)
    python benchmarks/reproduce_cifar10.py --root /work/shared/data --smoke          # end-to-end check (minutes)
    python benchmarks/reproduce_cifar10.py --root /data --full --device cuda         # the benchmark's settings (one GPU)
    python benchmarks/reproduce_cifar10.py --full --model resnet18 --methods AP HYDRA --keep 0.01   # a subset
    python benchmarks/reproduce_cifar10.py --plot-only                               # redraw the reports from the results

The data root comes from --root or $RCNB_DATA: a folder holding cifar-10-batches-py/ (the original pixels) or
cifar10-jpg/{train,test}/<class>/*.jpg (the JPEG copy in /work/shared/data: its numbers are labelled "CIFAR-10 (JPEG
copy)" and are NOT comparable with published CIFAR-10 results).

How it runs: as benchmarks/reproduce_mnist.py (the shared code is in benchmarks/_bench.py): one `experiments.sweep` per
method label, all writing one results file per model, every method at one budget before the next.
- Equal training budgets: one dense adversarial model per model is trained once (`dense_epochs`, lr `lr_dense`, eps
  ramped up over `eps_warmup` epochs) and every adversarial method starts from it; each then gets `compress_epochs`
  epochs split evenly over its own stages (with 6: AP/AL0/ALR [6], ATMC-32/CSTAR/HYDRA [3, 3], ATMC-8 [2, 2, 2]) at the
  compression lr `lr`. DA continues the dense training for `compress_epochs` at that lr. NAP is natural: its own
  natural dense stage then natural pruning. Every stage: SGD momentum 0.9, weight decay 5e-4, cosine lr schedule.
  The dense model is kept in one safetensors file of `<results stem>_cache/` (reading it runs no code); the reduced
  schedule's (1.2 MB) is committed, so that a run spread over several sessions or machines resumes from the same weights.
- Training attack: FGSM-RS (alpha 1.25 eps, random start: two forward-backward passes per image, against eight for
  PGD-7) with `train.OverfitGuard` (a PGD-5 check of the first 256 test images after every epoch; a collapse restores
  the last good weights and is recorded in the row's `guard`). `--train-attack pgd --train-steps 10` trains with
  Madry et al.'s PGD-10 instead (alpha 2.5 eps / steps = 2/255), about 5.5x the training compute.
- ALR cannot reach 1% of cifar_small (rank 1 in every layer is 3,493 weights, 1% is 2,878); CSTAR and ALR budgets
  below rank 1 are written as 'infeasible' rows with the reason.
- Resumable: sweep skips the rows already in the results (keyed by method, keep, k, bits, eps, seed, data, model) and
  writes each row as it finishes; an interrupted run loses at most the row in progress. Options that change the
  schedule (--n-train etc.) give it its own tag (e.g. 'reduced-3fa1c2'), results files and cache.
- Evaluation: `recipe('cifar10').eval_protocol(8/255, n_test, PROTOCOL)`: `aa-fast` for the CPU schedules (PGD-20,
  APGD-CE, APGD-T, Square 1,000 queries, in cascade, per-example worst case, plus the masking diagnostics: a row whose
  diagnostics fail is marked MASKED), AutoAttack's `standard` suite for --full; eval mode, a fixed seed, on the first
  `n_test` test images (a stratified subset). The protocol's text is printed under the table and stored in every row.
  Size: faithful CR (ATMC's count) and honest CR (index costs and biases included, against the dense fp32 file); the
  HTML report plots accuracy against the honest CR.

Schedules (results: benchmarks/results/reproduce_cifar10_<model>[_<schedule>].csv/.json/.html):
  REDUCED (default, CPU): model cifar_small (287,840 weights, 38.6 M multiply-adds per image), 5,000 stratified training
    images with random crop + flip, batch 128, dense 10 epochs (eps ramped over 2) at lr 0.1 + 6 compression epochs at
    lr 0.01, FGSM-RS, aa-fast on 1,000 test images, keep 0.1 0.05 0.01, all nine methods (25 rows, ALR at 1% infeasible).
    Measured on the shared 2-core machine (load 4 to 7, nice 10, one thread): one FGSM-RS epoch of the 5,000 images
    68.5 s wall, 31.4 s process CPU time; aa-fast on a point that survives every attack 7.9 s wall (4.3 s CPU). So,
    estimated: training 136 adversarial epochs (dense 10, DA 6, 20 feasible compressed rows x 6) = 1.2 to 2.6 h, plus
    NAP; evaluation, at 25% robust accuracy, about 250 surviving points x 4.3 to 7.9 s = 18 to 33 min per row, 25 rows
    = 8 to 14 h. Measured (results committed): the 25 rows took 12.8 h of wall time (3.0 h training, 9.9 h
    evaluation) plus 527 s for the dense start, two one-thread processes at a time over four sessions, merged by
    row key. The evaluation dominates; --n-test 500 halves it. The smoke run prints its own estimate at the end.
  SMOKE (--smoke, minutes on one CPU thread): 1,000 training images, batch 64, dense 2 epochs (eps ramped over 1) + 3
    compression epochs, 100 test images, DA, AP, ATMC-8, CSTAR and HYDRA at keep 0.05 unless --methods/--keep are
    given. It proves the pipeline end to end; its results are not part of the record (benchmarks/results/*_smoke.* are
    git-ignored). Measured on the shared machine (load about 5, nice 10, one thread): 17.7 min wall, 7.2 min of CPU;
    the estimate it printed for the REDUCED schedule, with that load: 13.2 h (3.6 h training, 9.6 h evaluation).
  FULL (--full, one GPU): ResNet-18 (11.2 M weights) and VGG-16 (14.7 M), all 50,000 training images with random crop +
    flip, batch 128, dense 40 epochs (eps ramped over 5) at lr 0.1 + 20 compression epochs at lr 0.01, FGSM-RS, bf16
    autocast (`amp`) and channels-last on CUDA, AutoAttack's standard suite (after our PGD-20) on all 10,000 test images,
    keep 0.1 0.05 0.01 (unstructured 90/95/99%) for AP, AL0 and HYDRA, with ATMC-32, ATMC-8 and CSTAR at the same
    numbers of parameters, and DA (19 rows per model). The epoch counts are our choice, not the papers'.
    Expected time on one H200, an ESTIMATE from FLOPs (no GPU was available to measure it; `--full` prints it again
    before it starts, `gpu_estimate`): ResNet-18 0.8 h of training (420 FGSM-RS epochs) and 4.3 h of evaluation (19
    rows), VGG-16 0.6 h and 2.4 h: about 8 hours for both models. Assumptions: 100 TFLOP/s effective for bf16 training
    plus 10 ms per optimizer step, 60 TFLOP/s for the fp32 (TF32) evaluation, half of the test points surviving every
    attack, the masking diagnostics (on 200 points) neglected; it may well be off by 2x either way. `--n-test 1000` cuts
    the evaluation tenfold; `--protocol aa-fast` to about a third.

Output: `experiments.sweep`'s CSV and JSON per model, and `<stem>.html` (`experiments.write_report`, plotly from its CDN):
the table, the trade-off figure against the honest compression ratio, and the Pareto front.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import torch

try:  # run from a checkout without installing the package
    import robustcompress_nb  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robustcompress_nb.attacks import FGSMRS
from robustcompress_nb.data import get_data
from robustcompress_nb.evaluation import PROTOCOLS
from robustcompress_nb.experiments import load_rows, recipe, results_paths, save_rows
from robustcompress_nb.models import MODELS, count_weights, get_model
from robustcompress_nb.size import model_size
from robustcompress_nb.solver import get_method
from _bench import (add_reproduction_args, check_keep, dense_start, device_of, estimate, feasible_rows, log, parse_label, report,
                    run_plan, tagged)

RESULTS = Path(__file__).resolve().parent / 'results'
EPS = 8 / 255
ALL_METHODS = ('DA', 'NAP', 'AP', 'AL0', 'ALR', 'ATMC-32', 'ATMC-8', 'CSTAR', 'HYDRA')
KEEP = (0.1, 0.05, 0.01)
_COMMON = dict(batch_size=128, augment=True, attack='fgsm-rs', train_steps=10, lr_dense=0.1, lr=0.01, schedule='cosine')
SCHEDULES = {   # compress_epochs: the epochs every method gets after the shared dense stage, split over its stages
    'reduced': dict(_COMMON, n_train=5_000, n_test=1_000, dense_epochs=10, eps_warmup=2, compress_epochs=6, amp=False, channels_last=False),
    'smoke': dict(_COMMON, n_train=1_000, n_test=100, batch_size=64, dense_epochs=2, eps_warmup=1, compress_epochs=3, amp=False, channels_last=False),
    'full': dict(_COMMON, n_train=None, n_test=None, dense_epochs=40, eps_warmup=5, compress_epochs=20, amp=True, channels_last=True),
}
SCHEDULE_MODELS = {'reduced': ('cifar_small',), 'smoke': ('cifar_small',), 'full': ('resnet18', 'vgg16')}
SCHEDULE_METHODS = {'smoke': ('DA', 'AP', 'ATMC-8', 'CSTAR', 'HYDRA'), 'full': ('DA', 'AP', 'AL0', 'HYDRA', 'ATMC-32', 'ATMC-8', 'CSTAR')}
SCHEDULE_KEEP = {'smoke': (0.05,)}
SCHEDULE_PROTOCOL = {'reduced': 'aa-fast', 'smoke': 'aa-fast', 'full': 'standard'}
OVERRIDES = ('n_train', 'n_test', 'dense_epochs', 'compress_epochs', 'train_steps')
SGD = dict(momentum=0.9, weight_decay=5e-4)
GPU = dict(train_tflops=100, eval_tflops=60, step_s=0.01, surviving=0.5)   # the assumptions of `gpu_estimate`


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument('--full', action='store_true', help='the benchmark settings: ResNet-18 and VGG-16, all of CIFAR-10, standard AutoAttack (GPU)')
    g.add_argument('--smoke', action='store_true', help='tiny end-to-end run')
    add_reproduction_args(p, 'cifar-10-batches-py or cifar10-jpg', ALL_METHODS, KEEP, OVERRIDES)
    p.add_argument('--model', nargs='+', default=None, choices=list(MODELS),
                   help="models, one results file each (default: cifar_small; --full: resnet18 vgg16)")
    p.add_argument('--train-attack', default=None, choices=['fgsm-rs', 'pgd'], help='training attack (default fgsm-rs; pgd: --train-steps, default 10)')
    p.add_argument('--protocol', default=None, choices=list(PROTOCOLS),
                   help="evaluation protocol (default aa-fast; --full: standard; 'teaching' is an upper bound only)")
    p.add_argument('--out-dir', default=str(RESULTS), help='folder of the results files (default: benchmarks/results)')
    a = p.parse_args(argv)
    check_keep(p, a)
    return a


def train_attack(sched):
    "FGSM-RS at eps (alpha 1.25 eps, random start), or the recipe's PGD with `train_steps` steps of 2.5 eps / steps."
    return FGSMRS(EPS) if sched['attack'] == 'fgsm-rs' else recipe('cifar10').train_attack(EPS, sched['train_steps'])


def passes(sched) -> int:
    "Forward-backward passes per training image: the attack's gradient steps and the training step."
    return 2 if sched['attack'] == 'fgsm-rs' else sched['train_steps'] + 1


SURVIVOR_PASSES = {'standard': 200 + 1_800 + 1_800 + 5_000, 'aa-fast': 200 + 1_800 + 1_000, 'teaching': 0}
"Forward-pass equivalents spent on a point no attack breaks (a forward-backward = 2): APGD-CE 100 iterations, APGD-T and FAB-T 9 targets x 100, Square queries."


def gpu_estimate(model_name, sched, labels, keeps, protocol, info) -> str:
    "Estimated hours of one model's rows on one GPU, from its FLOPs and the assumptions in `GPU` (an estimate, not a measurement)."
    net = get_model(model_name, info).eval()
    fwd = 2 * model_size(net, example_input=torch.rand(1, *info.input_shape))['macs']   # FLOPs of one forward pass
    n_train, n_test = sched['n_train'] or 50_000, sched['n_test'] or 10_000
    plan = feasible_rows(labels, keeps, net)
    adv = sum(not nat for *_, nat in plan) * sched['compress_epochs'] + sched['dense_epochs']
    nat = sum(nat for *_, nat in plan) * (sched['dense_epochs'] + sched['compress_epochs'])
    steps = -(-n_train // sched['batch_size']) * (adv + nat)
    train = (n_train * fwd * (adv * (2 * passes(sched) + 1) + nat * 3) / (GPU['train_tflops'] * 1e12) + steps * GPU['step_s']) / 3600
    per_point = 2 * protocol.attacks[0].steps + GPU['surviving'] * SURVIVOR_PASSES[protocol.name]
    ev = len(plan) * n_test * per_point * fwd / (GPU['eval_tflops'] * 1e12) / 3600
    return (f"{model_name}: ESTIMATED on one GPU (from {fwd / 2e6:.0f} M multiply-adds per image, not measured): {adv} adversarial and {nat} natural "
            f"epochs of {n_train:,} images {train:.1f} h + {len(plan)} evaluations ({protocol.name}) of {n_test:,} images {ev:.1f} h "
            f"= {train + ev:.1f} h (assuming {GPU['train_tflops']} TFLOP/s training + {GPU['step_s'] * 1e3:.0f} ms per step, "
            f"{GPU['eval_tflops']} TFLOP/s evaluation, {GPU['surviving']:.0%} of the points surviving every attack)")


def title(rows, model_name, tag) -> str:
    r = next((r for r in rows if r.get('status') == 'ok'), rows[0])
    return (f"{r.get('data_title', 'CIFAR-10')}, {model_name} ({r.get('dense_weights', 0):,} weights), eps 8/255, "
            f"{r['protocol']['train']['name'] if r.get('protocol', {}).get('train') else 'natural'} training: {tag} schedule")


def run_model(model_name, a, sched, labels, keeps, data, attack, protocol, options, out, name, device) -> list[dict]:
    "All rows of one model into `out`: the shared dense start, then `_bench.run_plan`; rows carry the data set's title and source."
    pc = results_paths(out)[0]
    print(f"\n== {model_name} ({count_weights(get_model(model_name, data.info)):,} weights) -> {pc}", flush=True)
    cache = Path(a.cache) if a.cache else out.parent / f"{pc.stem}_cache" / name
    dense = (dense_start(data, model_name, attack, sched, a, device, cache, options, guard=isinstance(attack, FGSMRS))
             if any(not get_method(m).natural for m, _ in labels) else None)
    common = dict(data=data, model=model_name, seeds=[a.seed], out=out, attack=attack, protocol=protocol, lr=sched['lr'],
                  loss=a.loss, device=device, on_row=log, **options)
    rows = run_plan(labels, keeps, sched, dense, common, out, model_name, data.info, a.floor)
    for r in rows: r.update(data_title=data.info.title, data_source=data.info.source)
    save_rows(rows, out)
    return rows


def main(argv=None):
    a = parse_args(argv)
    base = 'full' if a.full else 'smoke' if a.smoke else 'reduced'
    labels = [parse_label(m) for m in a.methods or SCHEDULE_METHODS.get(base, ALL_METHODS)]
    over = {k: getattr(a, k) for k in OVERRIDES if getattr(a, k) is not None}
    sched = dict(SCHEDULES[base], **over, **({'attack': a.train_attack} if a.train_attack else {}))
    keeps, protocol_name = a.keep or list(SCHEDULE_KEEP.get(base, KEEP)), a.protocol or SCHEDULE_PROTOCOL[base]
    name = tagged(base, sched, SCHEDULES[base])   # changed by options: its own tag, results files and dense model cache
    tag = name + ('' if protocol_name == SCHEDULE_PROTOCOL[base] else '_' + protocol_name)
    outs = {m: Path(a.out_dir) / f"reproduce_cifar10_{m}{'' if tag == 'reduced' else '_' + tag}.csv" for m in a.model or SCHEDULE_MODELS[base]}
    if a.plot_only:
        for m, out in outs.items():
            rows = load_rows(out)
            if rows: report(rows, out, title(rows, m, tag))
            else: print(f"{results_paths(out)[0]}: no rows")
        return
    root = a.root or os.environ.get('RCNB_DATA')
    if not root: raise SystemExit("reproduce_cifar10.py: give --root or set RCNB_DATA (a folder with cifar-10-batches-py/ or cifar10-jpg/)")
    device = device_of(a)
    data = get_data('cifar10', root=root, n_train=sched['n_train'], n_test=sched['n_test'], batch_size=sched['batch_size'],
                    seed=a.seed, augment=sched['augment'])
    attack, protocol = train_attack(sched), recipe(data).eval_protocol(EPS, sched['n_test'], protocol_name)
    cuda = device.type == 'cuda'   # amp is a no-op on the CPU; channels-last pays with amp on CUDA only
    options = dict(SGD, schedule=sched['schedule'], amp=sched['amp'] and cuda, channels_last=sched['channels_last'] and cuda)
    print(f"{tag} schedule {json.dumps(sched)}; {data.info.title}; device {device}, {torch.get_num_threads()} thread(s); "
          f"training attack {attack.name} ({attack.describe()}); {len(labels)} method(s) x keep {keeps}\nprotocol: {protocol.describe()}", flush=True)
    if base == 'full':
        for m in outs: print(gpu_estimate(m, sched, a.methods or SCHEDULE_METHODS[base], keeps, protocol, data.info), flush=True)
    for m, out in outs.items():
        rows = run_model(m, a, sched, labels, keeps, data, attack, protocol, options, out, name, device)
        print()
        report(rows, out, title(rows, m, tag), not a.no_plot)
        if a.smoke and m == 'cifar_small':
            print(estimate(rows, sched, SCHEDULES['reduced'], 'reduced', ALL_METHODS, KEEP, get_model(m, data.info), passes, 'FGSM-RS'))


if __name__ == '__main__':
    main()
