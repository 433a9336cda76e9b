"""How much slower does training run with the dashboard's live plots? (target: at most 5%)

    python benchmarks/dashboard_overhead.py                      # digits, small_cnn, ATMC-8 at target CR 0.01, 3 repeats
    python benchmarks/dashboard_overhead.py --repeats 5 --device cuda

The same compression run (ATMC-b from one shared dense adversarial model, `experiments.run_method`) is timed
(its training seconds; the final evaluation is the same in every variant and excluded):
- `plain`: run_method with no callbacks;
- `live`: the dashboard's run (`Dashboard(threaded=False)`) with the plots live: the `LiveLog` callback,
  the training curves redrawn every `--refresh-s` seconds and the per-layer views after every epoch, with
  the FigureWidget backend (by default every 1 s), and no per-epoch test evaluation (`n_eval_epoch=0`);
- `live+eval`: the same with the dashboard's default per-epoch test evaluation (clean + PGD-10 on 128 test
  examples): this is extra work the user asks for (the test curves), reported separately;
- `static`: `live` with the static backend (Colab's fallback: the figure redrawn as HTML, by default every 3 s).
Variants run interleaved, `--repeats` times each, and the table gives the median training seconds and the
overhead against `plain`. Outside a Jupyter kernel the widget messages are built (serialized) but not sent.
Results: benchmarks/results/dashboard_overhead.json.
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

try:  # run from a checkout without installing the package
    import robustcompress_nb  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from robustcompress_nb.dashboard import Dashboard
from robustcompress_nb.data import get_data
from robustcompress_nb.experiments import DenseModels, run_method
from robustcompress_nb.layers import clone_model

RESULTS = Path(__file__).resolve().parent / 'results'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--epochs', type=int, default=2, help='epochs per stage')
    p.add_argument('--steps', type=int, default=3, help='training PGD steps')
    p.add_argument('--cr', type=float, default=0.01, help='target compression ratio (stored bits / dense bits)')
    p.add_argument('--dense-epochs', type=int, default=None, help="epochs of the shared dense model (default: the dashboard's)")
    p.add_argument('--bits', type=int, default=8)
    p.add_argument('--refresh-s', type=float, default=None, help="redraw period (default: the dashboard's, 1 s widget / 3 s static)")
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--device', default=None)
    p.add_argument('--out', default=str(RESULTS / 'dashboard_overhead.json'))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = get_data('digits', batch_size=64, seed=0)

    def dash(**kw):
        return Dashboard(data, 'small_cnn', method='ATMC', cr=a.cr, bits=a.bits, steps=a.steps, epochs=a.epochs,
                         dense_epochs=a.dense_epochs, n_eval=None, refresh_s=a.refresh_s, threaded=False, device=a.device,
                         dense=shared, **kw)

    shared = DenseModels()                                        # the shared dense model, trained once, by the first run
    base = dash(n_eval_epoch=0, backend='widget')
    cfg = base.config()                                           # the settings as one run: Method, Budget, attack, epochs

    def plain():
        _, dense = shared.get(data, clone_model(base.template), base.model_name, attack=cfg['attack'], seed=base.seed,
                              epochs=cfg['dense_epochs'], eps=cfg['eps'], evaluation=cfg['evaluation'], device=a.device)
        row = run_method(cfg['method'], data, clone_model(base.template), cfg['budget'], attack=cfg['attack'],
                         evaluation=cfg['evaluation'], epochs=cfg['epochs'], n_eval=64, pretrained=dense, device=a.device)
        return row['train_seconds'], None

    def live(n_eval_epoch, backend):
        def f():
            d = dash(n_eval_epoch=n_eval_epoch, backend=backend)
            d.start()
            assert d.rows and not d.rows[-1]['stopped'], d.message.value
            return d.rows[-1]['train_seconds'], dict(redraws=d.figs['train'].n_draws, chunks=len(d.log.chunks))
        return f

    variants = {'plain': plain, 'live': live(0, 'widget'), 'live+eval': live(128, 'widget'), 'static': live(0, 'static')}
    times, extra = {k: [] for k in variants}, {}
    for v in variants.values(): v()                               # warm-up
    for _ in range(a.repeats):
        for k, v in variants.items():
            s, e = v(); times[k].append(s)
            if e: extra[k] = e
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"digits (1,437 train images), small_cnn, ATMC-{a.bits} at target CR {a.cr} from a shared dense model, "
          f"{a.epochs} epochs x 3 stages, PGD-{a.steps} training, refresh every {a.refresh_s or 'default'} s, "
          f"{torch.get_num_threads()} CPU thread(s), device {base.device}; median of {a.repeats}")
    print(f"{'variant':10s} {'train s':>8s} {'overhead':>9s}  redraws")
    for k in variants:
        print(f"{k:10s} {med[k]:8.2f} {100 * (med[k] / med['plain'] - 1):+8.1f}%  {extra.get(k, {}).get('redraws', '-')}")
    out = dict(protocol=dict(data='digits', model='small_cnn', method=f'ATMC-{a.bits}', target_cr=a.cr, budget=str(cfg['budget']),
                             epochs_per_stage=a.epochs, dense_epochs=cfg['dense_epochs'],
                             train_steps=a.steps, refresh_s=a.refresh_s or 'default', threads=torch.get_num_threads(),
                             device=str(base.device), repeats=a.repeats, torch=torch.__version__),
               train_seconds=times, median=med, overhead={k: med[k] / med['plain'] - 1 for k in variants}, extra=extra)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == '__main__':
    main()
