"Integration tests of `robustcompress_nb.layers.prune_channels` (needs the torch-pruning peer)."
import pytest
import torch
import torch.nn as nn

pytest.importorskip("torch_pruning")

from robustcompress_nb.constraints import keep_count
from robustcompress_nb.layers import atmc_factorize, clone_model, apply_masks, masks_from, prune_channels
from robustcompress_nb.projections import project_structured


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def conv_stack(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(12, 16, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 3 * 3, 10)).eval()


X = torch.rand(4, 3, 8, 8)


def zeroed_like_pruned(model, ratio, bn=None):
    "Dense copy with the out-channels project_structured drops zeroed (weights, biases, and BN affine if given)."
    z = clone_model(model)
    with torch.no_grad():
        for i, m in enumerate(z):
            if isinstance(m, nn.Conv2d):
                w = m.weight
                w.copy_(project_structured(w, keep_count(w.shape[0], ratio), dim=0))
                keep = w.flatten(1).abs().sum(1) > 0
                if m.bias is not None: m.bias.mul_(keep)
                if bn is not None and isinstance(z[i + 1], nn.BatchNorm2d):
                    z[i + 1].weight.mul_(keep); z[i + 1].bias.mul_(keep)
    return z


@pytest.mark.parametrize("ratio", [0.25, 0.5, 1.0])
def test_removing_equals_zeroing(ratio):
    net = conv_stack()
    small = prune_channels(net, X, ratio=ratio)
    k = [keep_count(c, ratio) for c in (8, 12, 16)]
    assert [small[i].out_channels for i in (0, 2, 4)] == k
    assert small[7].in_features == k[2] * 9 and small[7].out_features == 10     # classifier ignored
    assert n_params(small) == (3 * 9 + 1) * k[0] + (k[0] * 9 + 1) * k[1] + (k[1] + 1) * k[2] + (k[2] * 9 + 1) * 10
    torch.testing.assert_close(small(X), zeroed_like_pruned(net, ratio)(X), rtol=1e-5, atol=1e-5)


def test_keep_all_is_identity_and_input_untouched():
    net = conv_stack()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert torch.equal(prune_channels(net, X, ratio=1.0)(X), net(X))
    assert torch.equal(prune_channels(net, X, n_keep=100)(X), net(X))
    prune_channels(net, X, ratio=0.5)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_batchnorm_coupling_and_modes():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    net.train()
    with torch.no_grad(): net(torch.rand(16, 3, 8, 8))          # non-trivial running statistics
    rv = net[1].running_var.clone()
    small = prune_channels(net, X, ratio=0.5)
    assert small.training and net.training                       # modes kept
    assert small[1].num_features == 4 and small[4].num_features == 4
    assert torch.equal(net[1].running_var, rv)                   # tracing ran in eval mode on a copy
    net.eval(); small.eval()
    # removing a channel == zeroing its conv weights, bias AND its batch-norm affine (else the BN shift remains)
    torch.testing.assert_close(small(X), zeroed_like_pruned(net, 0.5, bn=True)(X), rtol=1e-5, atol=1e-5)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a, self.b = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
    def forward(self, x): return x + self.b(torch.relu(self.a(x)))


def test_residual_coupling_n_keep_dict_and_ignored():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Block(8), Block(8), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 4)).eval()
    small = prune_channels(net, X, ratio=0.5)
    # the stem and both blocks' outputs are added together: one coupled group, pruned together
    assert small[0].out_channels == small[1].b.out_channels == small[2].b.out_channels == small[5].in_features == 4
    assert small[1].a.out_channels == 4 and small(X).shape == (4, 4)
    only = prune_channels(net, X, n_keep={'1.a': 2})
    assert only[1].a.out_channels == 2 and only[1].b.in_channels == 2 and only[0].out_channels == 8
    kept = prune_channels(net, X, ratio=0.5, ignored_layers=[net[1].a, '2.a', '5'])
    assert kept[1].a.out_channels == 8 and kept[2].a.out_channels == 8


def test_shared_module_stays_shared():
    torch.manual_seed(3)
    lin = nn.Linear(6, 6)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), lin, nn.ReLU(), lin, nn.Linear(6, 3))
    x = torch.randn(5, 4)
    small = prune_channels(net, x, ratio=0.5)
    assert small[2] is small[4] and small(x).shape == (5, 3)
    assert n_params(small) < n_params(net)


@pytest.mark.parametrize("importance", ["l1", "group_l2"])
def test_other_importances(importance):
    small = prune_channels(conv_stack(), X, ratio=0.5, importance=importance)
    assert [small[i].out_channels for i in (0, 2, 4)] == [4, 6, 8]


def test_errors():
    net = conv_stack()
    for kw, msg in [(dict(), 'exactly one of ratio= or n_keep='), (dict(ratio=0.5, n_keep=2), 'exactly one of'),
                    (dict(ratio=0), 'ratio must be in (0, 1]'), (dict(ratio=1.5), 'ratio must be in (0, 1]'),
                    (dict(n_keep=0), 'n_keep must be an int >= 1'), (dict(n_keep={'0': 0}), 'n_keep must be'),
                    (dict(n_keep={'9': 2}), "n_keep names unknown layers ['9']"),
                    (dict(ratio=.5, importance='l3'), 'importance must be one of'),
                    (dict(ratio=.5, ignored_layers=['nope']), "unknown module 'nope'")]:
        with pytest.raises(ValueError, match=None) as e:
            prune_channels(net, X, **kw)
        assert msg in str(e.value)
    with pytest.raises(ValueError, match='remove_masks first'):
        prune_channels(apply_masks(net, masks_from(net)), X, ratio=.5)
    with pytest.raises(ValueError, match='atmc_merge first'):
        prune_channels(atmc_factorize(net), X, ratio=.5)
    with pytest.raises(ValueError, match='changed the output shape'):
        prune_channels(net, X, ratio=.5, ignored_layers=[])


def test_depthwise_coupling():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=8), nn.ReLU(), nn.Conv2d(8, 16, 1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    small = prune_channels(net, X, ratio=0.5)
    dw = small[2]
    assert small[0].out_channels == dw.in_channels == dw.out_channels == dw.groups == 4   # pruned together
    assert small[4].out_channels == 8 and small(X).shape == (4, 4)
