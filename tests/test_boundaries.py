"""Issue 12's table, as a user meets it at the boundaries (the CLI and the run layer). Each row of the table has
a test; the ones that live next to their code are named here:

| row | test |
|---|---|
| crafted `.rcnb` calling os.system, header bomb, shape [2**32], schema errors, `__main__` class | tests/test_export.py |
| SGD checkpoint into an Adam trainer, cuda checkpoint on a CPU, disk full, warmup=inf | nbs/04_train.ipynb |
| solver checkpoint_dir from another budget | nbs/20_solver.ipynb, nbs/90_cli.ipynb (--checkpoint-dir) |
| epochs that run no constraint stage, Conv1d/LSTM layers, a depthwise conv under ATMC | nbs/21_experiments.ipynb and below |
| dashboard Start while the old thread runs | nbs/30_dashboard.ipynb |
| `rcnb train` resumed with another --n-train/--seed, garbage checkpoints, --save into a missing folder | below |
"""
import math, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch.nn as nn

from robustcompress_nb.attacks import PGD
from robustcompress_nb.experiments import run_method, teaching_protocol
from robustcompress_nb.solver import Budget
from robustcompress_nb.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ['--epochs', '1', '--n-train', '200', '--n-test', '50', '--threads', '1', '--quiet', '--eval-steps', '2']


def rcnb(*args, timeout=300):
    exe = shutil.which('rcnb')
    cmd = [exe] if exe else [sys.executable, '-m', 'robustcompress_nb.cli']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def one_line_error(r):
    "Exit 2, argparse's usage and one error line, no traceback."
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert 'Traceback' not in r.stderr and 'usage: rcnb' in r.stderr, r.stderr
    return [l for l in r.stderr.splitlines() if 'error:' in l][-1]


def test_resume_with_other_subset_and_seed_is_refused(tmp_path):
    ck = tmp_path / 'run.pt'
    assert rcnb('train', *TINY, '--loss', 'natural', '--steps', '1', '--checkpoint', ck).returncode == 0 and ck.exists()
    before = ck.read_bytes()
    line = one_line_error(rcnb('train', *TINY, '--loss', 'natural', '--steps', '1', '--checkpoint', ck, '--n-train', '150', '--seed', '3'))
    assert 'seed' in line and 'n_train' in line, line     # the differences are listed
    assert ck.read_bytes() == before                      # nothing lost


@pytest.mark.parametrize('content', [b'', b'garbage' * 10, b'PK\x03\x04 not a checkpoint'])
def test_garbage_checkpoints_are_one_line_errors(tmp_path, content):
    bad = tmp_path / 'bad.pt'; bad.write_bytes(content)
    assert '--checkpoint' in one_line_error(rcnb('train', *TINY, '--checkpoint', bad))
    assert '--dense' in one_line_error(rcnb('compress', '--method', 'al0', '--keep', '0.1', *TINY, '--dense', bad))
    assert bad.read_bytes() == content


def test_save_into_a_missing_folder_is_made_before_training(tmp_path):
    out = tmp_path / 'new' / 'folder' / 'm.rcnb'
    r = rcnb('compress', '--method', 'al0', '--keep', '0.1', *TINY, '--train-steps', '1', '--save', out)
    assert r.returncode == 0, r.stderr and out.exists()
    (tmp_path / 'file').write_text('x')   # a folder that cannot be made: refused at once, before any training
    line = one_line_error(rcnb('compress', '--method', 'al0', '--keep', '0.1', *TINY, '--save', tmp_path / 'file' / 'm.rcnb'))
    assert '--save' in line


def test_schedules_that_do_not_compress_are_refused():
    fast = dict(attack=PGD(0.2, steps=1), protocol=teaching_protocol(0.2, 1), n_train=64, n_test=32)
    with pytest.raises(ValueError, match='no stage to run'): run_method('al0', budget=Budget(keep=0.1), epochs=0, **fast)
    with pytest.raises(ValueError, match='runs no constraint stage'): run_method('atmc', budget=Budget(keep=0.1, bits=8), epochs=[1, 0, 0, 0], **fast)


def test_layers_that_cannot_be_compressed_are_named_before_training():
    class WithLSTM(nn.Module):
        def __init__(self):
            super().__init__(); self.rnn = nn.LSTM(8, 8); self.fc = nn.Linear(64, 10)
        def forward(self, x): return self.fc(self.rnn(x.flatten(1).view(-1, 8, 8))[0].flatten(1))
    with pytest.raises(ValueError, match=r"cannot compress the layers \['rnn'\]"):
        run_method('al0', 'digits', WithLSTM(), Budget(keep=0.1), n_train=64, n_test=32)


@pytest.mark.parametrize('bad, msg', [(dict(warmup=math.inf), 'warmup'), (dict(lr=float('nan')), 'lr'), (dict(epochs=0), 'epochs')])
def test_bad_training_settings_are_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg): TrainConfig(**bad)
    with pytest.raises(ValueError, match='steps'): PGD(0.1, steps=0)
