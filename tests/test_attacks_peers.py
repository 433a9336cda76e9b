"""Attacks of `robustcompress_nb.attacks` against peer implementations (foolbox 3.3.4, torchattacks 3.5.1),
the AutoAttack adapter (pyautoattack), and the guarantees the attacks make about the model they touch.

Fast (a small CNN trained for about a second on scikit-learn's digits) and deterministic (fixed seeds).
"""
import copy
import sys

import pytest
import torch
import torch.nn.functional as F

from robustcompress_nb.attacks import FGSM, PGD, AutoAttack, fgsm, pgd
from robustcompress_nb.data import get_data
from robustcompress_nb.models import get_model

EPS = 0.1      # digits: the natural model keeps roughly half of the points at this budget
N = 300


@pytest.fixture(scope='module')
def setup():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny 8x8 model: one thread is fastest, and kind to parallel test runs
    torch.manual_seed(0)
    data = get_data('digits', batch_size=64)
    model = get_model('small_cnn', data.info)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        for xb, yb in data.train:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    x, y = map(torch.cat, zip(*data.test))
    yield model, x[:N], y[:N]
    torch.set_num_threads(threads)


def acc(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def assert_same(ours, theirs, model, y):
    """Same adversarial examples up to float round-off, and the same accuracy."""
    theirs = torch.as_tensor(theirs)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= 1e-6
    assert acc(model, ours, y) == acc(model, theirs, y)


# ---------------------------------------------------------------- foolbox (dev extra)
try:
    import foolbox as fb
except ImportError:  # pragma: no cover
    fb = None
needs_foolbox = pytest.mark.skipif(fb is None, reason='foolbox not installed (dev extra)')


@needs_foolbox
@pytest.mark.parametrize('steps', [1, 10])
def test_linf_pgd_matches_foolbox_exactly(setup, steps):
    model, x, y = setup
    ours = pgd(model, x, y, eps=EPS, alpha=EPS / 4, steps=steps, random_start=False)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, theirs, _ = fb.attacks.LinfPGD(abs_stepsize=EPS / 4, steps=steps, random_start=False)(fmodel, x, y, epsilons=EPS)
    assert_same(ours, theirs, model, y)
    assert acc(model, ours, y) < acc(model, x, y) - (0.2 if steps > 1 else 0.01)  # the attack does something


@needs_foolbox
def test_l2_pgd_matches_foolbox_exactly(setup):
    model, x, y = setup
    ours = pgd(model, x, y, eps=1.0, alpha=0.2, steps=10, norm='L2', random_start=False)
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, theirs, _ = fb.attacks.L2PGD(abs_stepsize=0.2, steps=10, random_start=False)(fmodel, x, y, epsilons=1.0)
    assert_same(ours, theirs, model, y)
    assert (ours - x).flatten(1).norm(dim=1).max() <= 1.0 + 1e-5


@needs_foolbox
def test_fgsm_matches_foolbox_exactly(setup):
    model, x, y = setup
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, theirs, _ = fb.attacks.FGSM()(fmodel, x, y, epsilons=EPS)
    assert_same(fgsm(model, x, y, eps=EPS), theirs, model, y)
    assert_same(FGSM(EPS)(model, x, y), theirs, model, y)


@needs_foolbox
@pytest.mark.parametrize('norm,eps,alpha', [('Linf', EPS, EPS / 4), ('L2', 0.5, 0.1)])  # both mid-range (~50%)
def test_random_start_pgd_agrees_with_foolbox(setup, norm, eps, alpha):
    """With random starts both are random variables: same accuracy within 1 point (fixed seeds, averaged over 3)."""
    model, x, y = setup
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    cls = fb.attacks.LinfPGD if norm == 'Linf' else fb.attacks.L2PGD
    ours, theirs = [], []
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        ours.append(acc(model, pgd(model, x, y, eps=eps, alpha=alpha, steps=10, norm=norm, generator=g), y))
        torch.manual_seed(100 + seed)  # foolbox draws its start from torch's global RNG
        _, xa, _ = cls(abs_stepsize=alpha, steps=10, random_start=True)(fmodel, x, y, epsilons=eps)
        theirs.append(acc(model, xa, y))
    assert abs(sum(ours) / 3 - sum(theirs) / 3) <= 0.01, (ours, theirs)


# ---------------------------------------------------------------- torchattacks (installed --no-deps here)
def _torchattacks():
    try:
        import torchattacks
    except Exception:  # missing, or one of its undeclared dependencies is
        pytest.skip('torchattacks not importable')
    return torchattacks


def test_linf_pgd_matches_torchattacks(setup):
    ta = _torchattacks()
    model, x, y = setup
    ours = pgd(model, x, y, eps=EPS, alpha=EPS / 4, steps=10, random_start=False)
    theirs = ta.PGD(model, eps=EPS, alpha=EPS / 4, steps=10, random_start=False)(x, y)
    assert_same(ours, theirs, model, y)
    assert not model.training


def test_fgsm_matches_torchattacks(setup):
    ta = _torchattacks()
    model, x, y = setup
    assert_same(fgsm(model, x, y, eps=EPS), ta.FGSM(model, eps=EPS)(x, y), model, y)


def test_random_start_pgd_agrees_with_torchattacks(setup):
    ta = _torchattacks()
    model, x, y = setup
    ours, theirs = [], []
    for seed in range(3):
        ours.append(acc(model, pgd(model, x, y, eps=EPS, alpha=EPS / 4, steps=10,
                                   generator=torch.Generator().manual_seed(seed)), y))
        torch.manual_seed(100 + seed)
        theirs.append(acc(model, ta.PGD(model, eps=EPS, alpha=EPS / 4, steps=10, random_start=True)(x, y), y))
    assert abs(sum(ours) / 3 - sum(theirs) / 3) <= 0.01, (ours, theirs)


# ---------------------------------------------------------------- properties
def test_random_start_really_moves(setup):
    model, x, y = setup
    x, y = x[:50], y[:50]
    bim = pgd(model, x, y, eps=EPS, alpha=1e-3, steps=1, random_start=False)
    a = pgd(model, x, y, eps=EPS, alpha=1e-3, steps=1, generator=torch.Generator().manual_seed(0))
    b = pgd(model, x, y, eps=EPS, alpha=1e-3, steps=1, generator=torch.Generator().manual_seed(1))
    assert (bim - x).abs().max() <= 1e-3 + 1e-6          # BIM: one tiny step from x
    assert (a - x).abs().max() > 0.5 * EPS                # a real start lands far inside the ball
    assert (a - b).abs().max() > 0.5 * EPS                # and differs between seeds
    assert (a - x).abs().max() <= EPS + 1e-6


def _snapshot(model):
    return ([m.training for m in model.modules()], [p.requires_grad for p in model.parameters()],
            [None if p.grad is None else p.grad.clone() for p in model.parameters()])


def _assert_same_snapshot(a, b):
    assert a[0] == b[0] and a[1] == b[1]
    for ga, gb in zip(a[2], b[2]):
        assert (ga is None and gb is None) or torch.equal(ga, gb)


@pytest.mark.parametrize('train_mode', [False, True])
def test_model_state_restored(setup, train_mode):
    model, x, y = setup
    m = copy.deepcopy(model).train(train_mode)
    F.cross_entropy(m(x[:8]), y[:8]).backward()              # existing .grad
    next(m.parameters()).requires_grad_(False)                 # a frozen parameter
    list(m.modules())[-1].train(not train_mode)                # mixed modes
    before = _snapshot(m)
    for attack in (FGSM(EPS), PGD(EPS, EPS / 4, 3), PGD(EPS, EPS / 4, 3, restarts=2), PGD(1.0, 0.2, 2, norm='L2')):
        attack(m, x[:32], y[:32])
        _assert_same_snapshot(before, _snapshot(m))


def test_works_under_no_grad_and_with_inference_tensors(setup):
    model, x, y = setup
    with torch.no_grad():
        a = pgd(model, x[:20], y[:20], eps=EPS, alpha=EPS / 4, steps=3, random_start=False)
    with torch.inference_mode():
        xi, yi = x[:20].clone(), y[:20].clone()
    b = pgd(model, xi, yi, eps=EPS, alpha=EPS / 4, steps=3, random_start=False)
    assert torch.equal(a, b) and not a.requires_grad


@pytest.mark.parametrize('kwargs,msg', [
    (dict(eps=-0.1, alpha=0.1, steps=1), 'eps must be'),
    (dict(eps=float('nan'), alpha=0.1, steps=1), 'eps must be'),
    (dict(eps=0.1, alpha=0.0, steps=1), 'alpha (step size) must be'),
    (dict(eps=0.1, alpha=-1.0, steps=1), 'alpha (step size) must be'),
    (dict(eps=0.1, alpha=0.1, steps=0), 'steps must be an integer >= 1'),
    (dict(eps=0.1, alpha=0.1, steps=1.5), 'steps must be an integer'),
    (dict(eps=0.1, alpha=0.1, steps=1, restarts=0), 'restarts must be an integer >= 1'),
    (dict(eps=0.1, alpha=0.1, steps=1, norm='L1'), "norm must be one of ('Linf', 'L2')"),
    (dict(eps=0.1, alpha=0.1, steps=1, norm='linf'), "norm must be one of"),
])
def test_bad_hyperparameters(setup, kwargs, msg):
    model, x, y = setup
    with pytest.raises(ValueError) as e:
        pgd(model, x[:4], y[:4], **kwargs)
    assert msg in str(e.value)


@pytest.mark.parametrize('make,msg', [
    (lambda x, y: (x * 255, y), 'x must lie in [0, 1]'),
    (lambda x, y: (x - 0.5, y), 'x must lie in [0, 1]'),
    (lambda x, y: (x, y[:-1]), f'y must have shape ({8},)'),
    (lambda x, y: (x, y[:, None]), 'y must have shape'),
    (lambda x, y: (x, y.float()), 'integer class labels'),
    (lambda x, y: (x, y > 4), 'integer class labels'),
    (lambda x, y: (x, y + 10), 'labels in [0, 9]'),
    (lambda x, y: (x, y - 20), 'labels in [0, 9]'),
])
@pytest.mark.parametrize('attack', [lambda m, x, y: fgsm(m, x, y, eps=0.1),
                                    lambda m, x, y: pgd(m, x, y, eps=0.1, alpha=0.1, steps=2)])
def test_bad_inputs(setup, make, msg, attack):
    model, x, y = setup
    xb, yb = make(x[:8], y[:8])
    with pytest.raises(ValueError) as e:
        attack(model, xb, yb)
    assert msg in str(e.value)


def test_tiny_float_excess_is_tolerated(setup):
    model, x, y = setup
    pgd(model, (x[:4] * (1 + 1e-7)), y[:4], eps=0.1, alpha=0.1, steps=1)  # round-off above 1 is fine


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu(setup):
    model, x, y = setup
    mc = copy.deepcopy(model).cuda()
    a = pgd(mc, x.cuda(), y.cuda(), eps=EPS, alpha=EPS / 4, steps=5, random_start=False)
    assert a.device.type == 'cuda'
    b = pgd(model, x, y, eps=EPS, alpha=EPS / 4, steps=5, random_start=False)
    assert abs(acc(model, a.cpu(), y) - acc(model, b, y)) <= 0.02  # different kernels: sign flips are possible
    g = torch.Generator(device='cuda').manual_seed(0)
    r = pgd(mc, x.cuda(), y.cuda(), eps=EPS, alpha=EPS / 4, steps=2, restarts=2, generator=g)
    assert (r - x.cuda()).abs().max() <= EPS + 1e-6


# ---------------------------------------------------------------- AutoAttack adapter (optional extra)
def test_autoattack_adapter_cheap(setup):
    pytest.importorskip('pyautoattack')
    model, x, y = setup
    x, y = x[:32], y[:32]
    model.zero_grad(set_to_none=True)
    before = _snapshot(model)
    tracer = sys.gettrace()
    aa = AutoAttack(EPS, version='custom', attacks=['apgd-ce', 'apgd-t', 'fab-t', 'square'], n_iter=5, n_queries=20)
    xa = aa(model, x, y)
    assert sys.gettrace() is tracer                      # pyautoattack's settrace(None) undone
    _assert_same_snapshot(before, _snapshot(model))      # FAB's backward() did not touch .grad
    assert xa.shape == x.shape and (xa - x).abs().max() <= EPS + 1e-5 and 0 <= xa.min() and xa.max() <= 1
    assert acc(model, xa, y) <= acc(model, x, y)
    # at least as strong as the first of its attacks alone would make it on the clean-correct points
    assert acc(model, xa, y) <= acc(model, pgd(model, x, y, eps=EPS, alpha=EPS / 4, steps=1, random_start=False), y) + 0.1
    assert aa.protocol['attacks'] == ['apgd-ce', 'apgd-t', 'fab-t', 'square'] and aa.protocol['steps'] == 5


def test_autoattack_l2_standard_runs(setup):
    pytest.importorskip('pyautoattack')
    model, x, y = setup
    aa = AutoAttack(0.5, norm='L2', n_iter=3, n_queries=10)
    xa = aa(model, x[:8], y[:8])
    assert (xa - x[:8]).flatten(1).norm(dim=1).max() <= 0.5 + 1e-4


def test_autoattack_missing_package_message(setup, monkeypatch):
    model, x, y = setup
    monkeypatch.setitem(sys.modules, 'pyautoattack', None)  # makes `import pyautoattack` raise ImportError
    with pytest.raises(ImportError, match=r'pip install robustcompress_nb\[autoattack\]'):
        AutoAttack(EPS)(model, x[:4], y[:4])
