"""A fixed-seed row of every method is identical to the committed reference (tests/data/reference_rows.json),
recorded before the run layer was rebuilt around the method registry: same stages, sizes, accuracies, weights.
The accuracies are measured as the reference was (`evaluation.evaluate`, FGSM and PGD-3 on every example, seed 0),
apart from the run layer, whose default protocol has since become AutoAttack-grade."""
import json
from pathlib import Path

import pytest
import torch

from robustcompress_nb.attacks import PGD
from robustcompress_nb.data import get_data
from robustcompress_nb.attacks import FGSM
from robustcompress_nb.evaluation import evaluate
from robustcompress_nb.experiments import train_method
from robustcompress_nb.solver import Budget

REF = json.loads((Path(__file__).parent / 'data' / 'reference_rows.json').read_text())


@pytest.fixture(scope='module')
def data():
    return get_data('digits', n_train=640, n_test=128, batch_size=64, seed=0)


@pytest.mark.parametrize('ref', REF, ids=[r['label'] for r in REF])
def test_row_identical_to_reference(ref, data):
    torch.set_num_threads(1)
    eps = data.info.eps
    from robustcompress_nb.models import get_model, count_weights
    from robustcompress_nb.size import model_size
    from robustcompress_nb.solver import get_method
    model0, budget = get_model('small_cnn', data.info, seed=0), Budget(keep=ref['keep_fraction'], bits=ref['bits'])
    tr = train_method(ref['method'], model0, budget, data, attack=PGD(eps, steps=2), epochs=2, seed=0)
    model = tr.model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ev = evaluate(model, data.test, [FGSM(eps), PGD(eps, steps=3)])
    sz = model_size(model, dense_weights=count_weights(model0), example_input=next(iter(data.test))[0][:1])
    got = dict(label=get_method(ref['method']).label(budget), nnz=sz['nnz'], faithful_bits=sz['faithful_bits'], honest_bits=sz['honest_bits'],
               clean_acc=ev['clean_acc'], robust_acc=dict(ev['robust_acc']), worst_case_acc=ev['worst_case_acc'],
               stages=[s.name for s in tr.stages], epochs=[s.epochs for s in tr.stages], feasible=tr.feasible)
    for k, v in got.items(): assert v == ref[k], k
    l1 = sum(float(p.detach().double().abs().sum()) for p in model.parameters())
    assert l1 == pytest.approx(ref['weights_l1'], rel=1e-9)
