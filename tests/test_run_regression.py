"""A fixed-seed row of every method is identical to the committed reference (tests/data/reference_rows.json),
recorded before the run layer was rebuilt around the method registry: same stages, sizes, accuracies, weights."""
import json
from pathlib import Path

import pytest
import torch

from robustcompress_nb.attacks import PGD
from robustcompress_nb.data import get_data
from robustcompress_nb.experiments import run_method, teaching_attacks
from robustcompress_nb.solver import Budget

REF = json.loads((Path(__file__).parent / 'data' / 'reference_rows.json').read_text())


@pytest.fixture(scope='module')
def data():
    return get_data('digits', n_train=640, n_test=128, batch_size=64, seed=0)


@pytest.mark.parametrize('ref', REF, ids=[r['label'] for r in REF])
def test_row_identical_to_reference(ref, data):
    torch.set_num_threads(1)
    eps = data.info.eps
    row, model = run_method(ref['method'], data, 'small_cnn', Budget(keep=ref['keep_fraction'], bits=ref['bits']), epochs=2,
                            attack=PGD(eps, steps=2), evaluation=teaching_attacks(eps, 3), seed=0, return_model=True)
    for k in ('label', 'nnz', 'faithful_bits', 'honest_bits', 'clean_acc', 'robust_acc', 'worst_case_acc', 'stages', 'epochs', 'feasible'):
        assert row[k] == ref[k], k
    l1 = sum(float(p.detach().double().abs().sum()) for p in model.parameters())
    assert l1 == pytest.approx(ref['weights_l1'], rel=1e-9)
