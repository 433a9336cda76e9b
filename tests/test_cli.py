"""The `rcnb` console command run as a user runs it: in a subprocess, with tiny settings.

`rcnb` is used when it is installed on the PATH (pip install -e .); otherwise the same entry point runs
as `python -m robustcompress_nb.cli` from this checkout.
"""
import importlib.util, json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

from robustcompress_nb.attacks import fmt_eps
from robustcompress_nb.data import get_data

ROOT = Path(__file__).resolve().parents[1]
EPS = get_data('digits', n_train=300, n_test=100).info.eps     # the digits default budget (0.2)
TINY = ['--epochs', '1', '--n-train', '300', '--n-test', '100', '--threads', '1']


def rcnb(*args, timeout=300):
    "Run `rcnb ARGS` and return the CompletedProcess (stdout, stderr as text)."
    exe = shutil.which('rcnb')
    cmd = [exe] if exe else [sys.executable, '-m', 'robustcompress_nb.cli']
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
           'OMP_NUM_THREADS': '1'}
    env.pop('RCNB_DATA', None)
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def test_train_prints_protocol_and_accuracies():
    r = rcnb('train', *TINY)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'adversarial training of small_cnn' in out and 'digits' in out
    assert '300 train / 100 test' in out
    assert f'PGD-7 (Linf eps={fmt_eps(EPS)}, alpha={fmt_eps(2.5 * EPS / 7)}, 1 restart)' in out   # alpha = 2.5 eps / steps
    assert 'evaluation on 100 test examples, model in eval mode' in out
    rows = {l.split()[0]: l.split() for l in out.splitlines() if l.strip().startswith(('clean', 'PGD-20', 'APGD-CE', 'APGD-T', 'Square'))}
    assert list(rows) == ['clean', 'PGD-20', 'APGD-CE', 'APGD-T', 'Square'], out     # the default protocol: AA-grade, in order
    accs = [float(v[1]) for v in rows.values()]
    assert accs == sorted(accs, reverse=True) and 0 <= accs[-1] <= accs[0] <= 1        # each attack on the survivors
    head = [l.strip() for l in out.splitlines() if l.strip().startswith('robust accuracy:')]
    assert head and float(head[0].split()[2]) == accs[-1], out                        # the headline, under its name
    assert f'protocol: aa-fast v1: Linf eps={fmt_eps(EPS)}, n=all; PGD-20' in out and 'masking diagnostics' in out or 'MASKING' in out
    assert 'epoch 1/1: loss' in r.stderr    # progress lines go to stderr


def test_json_output_parses(tmp_path):
    r = rcnb('train', *TINY, '--loss', 'mixed', '--protocol', 'teaching', '--eval-steps', '5', '--eval-restarts', '2', '--json',
             '--save', tmp_path / 'model.safetensors')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)           # stdout holds exactly one JSON object
    assert out['command'] == 'train'
    assert out['data']['name'] == 'digits' and out['data']['n_train'] == 300 and out['data']['n_test'] == 100
    assert out['training']['loss'] == 'mixed' and out['training']['adv_weight'] == 0.5
    assert out['training']['attack']['steps'] == 7 and out['training']['attack']['eps'] == pytest.approx(EPS)
    ev = out['evaluation']
    assert ev['n'] == 100 and set(ev['attack_acc']) == {'FGSM', 'PGD-5'} and ev['headline'] == 'robust_upper_bound'
    p = ev['protocol_spec']['attacks'][1]
    assert (p['steps'], p['restarts'], p['random_start']) == (5, 2, True)
    assert p['alpha'] == pytest.approx(2.5 * EPS / 5)
    assert 0 <= ev['worst_case_acc'] <= min(ev['attack_acc'].values()) <= ev['clean_acc'] <= 1
    assert len(out['history']) == 1 and {'train_loss', 'train_acc', 'train_adv_acc'} <= set(out['history'][0])
    from robustcompress_nb.cli import load_dense
    meta, state = load_dense(tmp_path / 'model.safetensors')   # safetensors: reading it runs no code
    assert meta['model'] == 'small_cnn' and meta['data'] == 'digits'
    from robustcompress_nb.models import get_model
    m = get_model(meta['model'], input_shape=tuple(meta['info']['input_shape']), n_classes=10)
    m.load_state_dict(state)    # a model of the same architecture takes the weights


def test_checkpoint_resumes(tmp_path):
    ck = tmp_path / 'run.pt'
    r1 = rcnb('train', *TINY, '--loss', 'natural', '--checkpoint', ck, '--json')
    assert r1.returncode == 0, r1.stderr and ck.exists()
    r2 = rcnb('train', *TINY, '--loss', 'natural', '--checkpoint', ck, '--json')
    assert r2.returncode == 0, r2.stderr
    assert 'resumed' in r2.stderr
    o1, o2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert o2['training']['resumed_from_epoch'] == 1
    assert o1['evaluation']['clean_acc'] == o2['evaluation']['clean_acc']   # the same weights, nothing retrained


BAD = [
    (['train', '--epochs', '0'], 'must be >= 1'),
    (['train', '--eps', '2'], 'in [0, 1]'),
    (['train', '--lr', '-0.1'], 'must be > 0'),
    (['train', '--data', 'imagenet'], 'invalid choice'),
    (['train', '--loss', 'trades'], 'invalid choice'),
    (['train', '--model', 'gpt'], 'invalid choice'),
    (['train', '--n-train', 'many'], 'not an integer'),
    (['train', '--data', 'mnist'], 'RCNB_DATA'),                       # no root anywhere
    (['train', '--data', 'mnist', '--root', '/nonexistent/rcnb'], 'not found'),
    (['train', '--n-train', '99999'], 'n_train must be in'),
    (['train', '--device', 'warp-drive'], '--device'),
    ([], 'choose a command'),
    (['fly'], 'invalid choice'),
]


@pytest.mark.parametrize('args, msg', [BAD[0], BAD[8], BAD[11]])
def test_bad_arguments_exit_2_with_message(args, msg):
    "In a real process: exit status 2, argparse's usage line and the message, no traceback."
    r = rcnb(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and 'usage: rcnb' in r.stderr


@pytest.mark.parametrize('args, msg', BAD)
def test_bad_arguments_in_process(args, msg, capsys, monkeypatch):
    "The same through `main(argv)` (no subprocess per case)."
    from robustcompress_nb.cli import main
    monkeypatch.delenv('RCNB_DATA', raising=False)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and 'usage: rcnb' in err, err


def test_help():
    r = rcnb('train', '--help')
    assert r.returncode == 0 and '--eval-restarts' in r.stdout and '--checkpoint' in r.stdout


# ---- rcnb compress / rcnb demo -------------------------------------------------------------------------
CTINY = ['--epochs', '1', '--n-train', '300', '--n-test', '100', '--train-steps', '2', '--eval-steps', '5', '--protocol', 'teaching',
         '--threads', '1', '--quiet']


def test_compress_prints_protocol_and_sizes(tmp_path):
    r = rcnb('compress', '--method', 'atmc', '--data', 'digits', '--keep', '0.05', '--bits', '8', *CTINY,
             '--save', tmp_path / 'atmc.rcnb')
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert 'rcnb compress: ATMC-8 of small_cnn on digits, keep 0.05' in out and '8 bits' in out
    assert 'stages (epochs): dense 1, sparse 1, factorized 1, quantize 1' in out
    assert 'faithful' in out and 'honest' in out and 'evaluation on 100 test examples, model in eval mode' in out
    rows = {l.split()[0]: l.split() for l in out.splitlines() if l.strip().startswith(('clean', 'FGSM', 'PGD-5'))}
    assert set(rows) == {'clean', 'FGSM', 'PGD-5'} and 'robust accuracy upper bound:' in out
    assert f'protocol: teaching v1 pgd_steps=5 (UPPER BOUND only): Linf eps={fmt_eps(EPS)}' in out
    assert 'compressed model saved to' in out
    from robustcompress_nb.export import load_compressed
    m = load_compressed(tmp_path / 'atmc.rcnb')
    x = get_data('digits', n_train=300, n_test=100).test.dataset.batch(list(range(4)))[0]
    assert m.eval()(x).shape == (4, 10)
    from robustcompress_nb.layers import atmc_factors
    nnz = sum(int((f != 0).sum()) for f in atmc_factors(m))
    from robustcompress_nb.models import get_model, count_weights
    N = count_weights(get_model('small_cnn', get_data('digits', n_train=300, n_test=100).info))
    assert 0 < nnz <= round(0.05 * N)       # the saved file holds the budgeted model


def test_compress_json(tmp_path):
    r = rcnb('compress', '--method', 'cstar', '--keep', '0.2', '--json', '--epochs-scale', '2', *CTINY)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out['command'] == 'compress' and out['method'] == 'CSTAR' and out['keep'] == 0.2 and out['bits'] is None
    assert out['epochs'] == [2, 2, 2] and out['stages'] == ['dense', 'admm', 'finetune']
    assert out['params'] <= out['k'] == round(0.2 * out['dense_weights'])
    assert 0 <= out['worst_case_acc'] <= min(out['attack_acc'].values()) <= out['clean_acc'] <= 1
    assert out['protocol']['eval']['attacks'][1]['random_start'] is True and out['protocol']['model_mode'] == 'eval'


@pytest.mark.parametrize('args, msg', [
    (['compress', '--keep', '0'], 'in (0, 1)'),
    (['compress', '--keep', '1'], 'in (0, 1)'),
    (['compress', '--keep', '-0.5'], 'in (0, 1)'),
    (['compress', '--cr', '0.05'], '--cr was renamed: use --keep'),
    (['compress', '--bits', '0'], 'in [1, 16]'),
    (['compress', '--bits', '17'], 'in [1, 16]'),
    (['compress', '--method', 'lasso'], "choose from 'da', 'nap', 'ap', 'al0', 'alr', 'aq', 'atmc', 'cstar'"),
    (['demo', '--keep', '2'], 'in (0, 1)'),
])
def test_compress_bad_arguments_exit_2(args, msg):
    r = rcnb(*args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr and 'usage: rcnb' in r.stderr and 'Traceback' not in r.stderr, r.stderr


def test_demo_quick_writes_report(tmp_path):
    r = rcnb('demo', '--quick', '--threads', '1', '--out', tmp_path / 'demo')
    assert r.returncode == 0, r.stderr
    out = r.stdout
    lines = {l.split()[0]: l.split() for l in out.splitlines() if l.strip().startswith(('DA ', 'ATMC-8', 'CSTAR'))}
    assert set(lines) == {'DA', 'ATMC-8', 'CSTAR'}, out
    assert 'aa-fast v1' in out and 'model in eval mode' in out
    page = (tmp_path / 'demo' / 'report.html').read_text()
    assert page.count('class="plotly-graph-div"') == 2 and 'ATMC-8' in page and 'Pareto front' in page
    rows = json.loads((tmp_path / 'demo' / 'results.json').read_text())
    assert [r_['label'] for r_ in rows] == ['DA', 'ATMC-8', 'CSTAR']
    assert rows[1]['nnz'] <= rows[1]['k'] and rows[1]['faithful_cr'] < 0.05 and rows[2]['nnz'] <= rows[2]['k']
    assert all(r_['feasible'] for r_ in rows)
    assert (tmp_path / 'demo' / 'results.csv').read_text().startswith('method,label,keep,k,bits')
    assert (tmp_path / 'demo' / 'plotly.min.js').exists()   # the report works offline


# ---- rcnb sweep -----------------------------------------------------------------------------------------
SWEEP = ['sweep', '--methods', 'al0', '--keep', '0.05', '0.1']
untimed = lambda rows: [{k: v for k, v in r.items() if not k.endswith('seconds')} for r in rows]


@pytest.fixture(scope='module')
def swept(tmp_path_factory):
    "A tiny sequential sweep (AL0 at two budgets, the shared dense model first), run once: its results CSV and its JSON output."
    out = tmp_path_factory.mktemp('sweep') / 'results.csv'
    r = rcnb(*SWEEP, '--out', out, '--json', *CTINY)
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_sweep_writes_rows_and_report(swept):
    out, res = swept
    assert res['command'] == 'sweep' and (res['new'], res['resumed']) == (2, 0)
    assert [(r['method'], r['keep'], r['seed'], r['status']) for r in res['rows']] == [('AL0', 0.05, 0, 'ok'), ('AL0', 0.1, 0, 'ok')]
    assert all(0 < r['nnz'] <= r['k'] and r['pretrained'] and r['protocol']['eval']['name'] == 'teaching' for r in res['rows'])
    assert json.loads(out.with_suffix('.json').read_text()) == res['rows']
    assert out.read_text().startswith('method,label,keep,k,bits') and len(out.read_text().splitlines()) == 3
    page = out.with_suffix('.html').read_text()
    assert res['report'] == str(out.with_suffix('.html')) and page.count('class="plotly-graph-div"') == 2
    assert (out.parent / 'plotly.min.js').exists()


def test_sweep_resumes_without_recomputing(swept, tmp_path):
    out, res = swept
    for src in (out, out.with_suffix('.json')): shutil.copy(src, tmp_path / src.name)
    r = rcnb(*SWEEP, '0.2', '--out', tmp_path / out.name, *CTINY[:-1])       # one more budget; not --quiet: a line per new row
    assert r.returncode == 0, r.stderr
    assert 'resumed  2 rows were in' in r.stdout and '; 1 new' in r.stdout, r.stdout
    assert [l.split()[:3] for l in r.stderr.splitlines() if ' done in ' in l] == [['AL0', 'keep', '0.2']], r.stderr   # only the missing cell ran
    rows = json.loads((tmp_path / 'results.json').read_text())
    assert rows[:2] == res['rows'] and rows[2]['keep'] == 0.2       # the old rows as they were, times included
    lines = r.stdout.splitlines()
    body = [i for i, l in enumerate(lines) if l.split()[:1] == ['AL0'] and len(l.split()) > 10 and l.split()[1] != 'keep']   # table rows, not notes
    proto = next(i for i, l in enumerate(lines) if l.strip().startswith('protocol: teaching v1'))
    assert [lines[i].split()[1] for i in body] == ['0.05', '0.1', '0.2'] and body[-1] < proto, r.stdout   # the table, the protocol under it


@pytest.mark.parametrize('args, msg', [
    (['--methods', 'lasso'], "invalid choice: 'lasso'"),
    (['--methods', 'cstar'], '--keep: CSTAR take a parameter budget'),
    (['--methods', 'al0', '--keep', '0.1', '--address', 'localhost:1'], '--address is for --backend ray'),
    (['--methods', 'al0', '--keep', '0.1', '--backend', 'ray', '--address', '127.0.0.1:1'], "could not reach the Ray cluster at '127.0.0.1:1'"),
])
def test_sweep_bad_arguments_exit_2(args, msg, tmp_path):
    r = rcnb('sweep', *args, '--out', tmp_path / 'x' / 'r.csv')
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert msg in r.stderr and 'usage: rcnb sweep' in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert not (tmp_path / 'x').exists()        # refused before any work


def test_sweep_without_ray_gives_the_install_command(capsys, monkeypatch, tmp_path):
    from robustcompress_nb.cli import main
    monkeypatch.setitem(sys.modules, 'ray', None)       # `import ray` fails as if it were not installed
    assert main([*SWEEP, '--backend', 'ray', '--out', str(tmp_path / 'r.csv')]) == 2
    err = capsys.readouterr().err
    assert 'pip install "robustcompress_nb[ray]"' in err and '--backend ray' in err, err
    assert not (tmp_path / 'r.csv').exists()


@pytest.mark.skipif(importlib.util.find_spec('ray') is None, reason='Ray is not installed (pip install "robustcompress_nb[ray]")')
def test_sweep_on_ray_gives_the_sequential_rows(swept, tmp_path):
    "A local Ray (the tasks with 1 thread, as the sequential run): the same rows, timings aside."
    out, res = swept
    r = rcnb(*SWEEP, '--backend', 'ray', '--threads-per-task', '1', '--out', tmp_path / 'ray.csv', '--json', *CTINY, timeout=600)
    if 'could not start a local Ray instance' in r.stderr: pytest.skip(f"this machine could not start Ray: {r.stderr.splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got['new'] == 2 and untimed(got['rows']) == untimed(res['rows'])
