"""Adding a method is one record: a method registered at run time (a renamed copy of AL0) runs through
`run_method`, `sweep` and the `rcnb` parser with no other change (the dashboard's own test does the same)."""
import pytest

from robustcompress_nb import solver
from robustcompress_nb.attacks import PGD
from robustcompress_nb.cli import build_parser
from robustcompress_nb.data import get_data
from robustcompress_nb.experiments import run_method, sweep, teaching_protocol
from robustcompress_nb.solver import Budget, Method, METHODS, register_method


@pytest.fixture
def myl0():
    m = register_method(Method('MYL0', solver.al0, 'sparse', summary='AL0 under another name'))
    yield m
    del METHODS['MYL0']


def test_registered_method_runs_everywhere(myl0, tmp_path):
    data = get_data('digits', n_train=192, n_test=64, seed=0)
    eps = data.info.eps
    fast = dict(attack=PGD(eps, steps=1), protocol=teaching_protocol(eps, 2))
    row = run_method('myl0', data, 'small_cnn', Budget(keep=0.1), **fast)
    assert (row['method'], row['label'], row['stages'], row['feasible']) == ('MYL0', 'MYL0', ['dense', 'l0'], True)
    assert 0 < row['nnz'] <= row['k']
    rows = sweep(['myl0', 'al0'], [0.1], data=data, out=tmp_path / 'res', **fast)
    assert [r['label'] for r in rows] == ['MYL0', 'AL0']
    assert rows[0]['nnz'] == rows[1]['nnz']      # the same method under two names, from the same dense start
    args = build_parser().parse_args(['compress', '--method', 'myl0', '--keep', '0.1'])
    assert args.method == 'myl0'
    help_text = ' '.join(build_parser()._subparsers._group_actions[0].choices['compress'].format_help().split())
    assert 'myl0: AL0 under another name' in help_text


def test_unregistered_method_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(['compress', '--method', 'myl0'])
