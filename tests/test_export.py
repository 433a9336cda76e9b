"Integration tests of robustcompress_nb.export: a file written here is read back in a fresh interpreter."
import os, subprocess, sys, textwrap
from pathlib import Path

import pytest
import torch

import robustcompress_nb

from robustcompress_nb.export import save_compressed, load_compressed
from robustcompress_nb.layers import atmc_factorize, atmc_factors
from robustcompress_nb.models import get_model, count_weights
from robustcompress_nb.projections import project_sparse
from robustcompress_nb.quantize import quantize_kmeans, dequantize


def _atmc_lenet():
    torch.manual_seed(0)
    model = atmc_factorize(get_model('lenet_atmc', input_shape=(1, 28, 28), n_classes=10)).eval()
    fs = atmc_factors(model)
    with torch.no_grad():
        for f, p in zip(fs, project_sparse([f.detach() for f in fs], k=count_weights(get_model('lenet_atmc', input_shape=(1, 28, 28), n_classes=10)) // 100)):
            f.copy_(dequantize(*quantize_kmeans(p, 4)))
    return model


def test_fresh_process_reads_the_same_model(tmp_path):
    "The architecture pickle needs only importable classes: a new interpreter rebuilds the same function."
    model, x = _atmc_lenet(), torch.rand(4, 1, 28, 28)
    rep = save_compressed(model, tmp_path / 'm.rcnb')
    torch.save(x, tmp_path / 'x.pt'); torch.save(model(x).detach(), tmp_path / 'y.pt')
    code = textwrap.dedent(f"""
        import torch
        from robustcompress_nb.export import load_compressed
        m = load_compressed({str(tmp_path / 'm.rcnb')!r})
        x, y = torch.load({str(tmp_path / 'x.pt')!r}), torch.load({str(tmp_path / 'y.pt')!r})
        assert type(m).__module__.startswith('robustcompress_nb') or any(
            type(l).__module__.startswith('robustcompress_nb') for l in m.modules())
        assert torch.equal(m(x), y), 'outputs differ'
        print('ok')
    """)
    root = str(Path(robustcompress_nb.__file__).resolve().parent.parent)   # the child imports the same package
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
    assert rep['file_bytes'] == (tmp_path / 'm.rcnb').stat().st_size


def test_failed_save_leaves_old_file(tmp_path):
    "An unpicklable model raises and leaves an existing file at the path untouched."
    path = tmp_path / 'm.rcnb'
    save_compressed(torch.nn.Linear(3, 2), path)
    before = path.read_bytes()
    bad = torch.nn.Linear(3, 2); bad.f = lambda x: x
    with pytest.raises(TypeError, match='cannot be pickled'):
        save_compressed(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['m.rcnb']     # no temporary file left behind
    assert isinstance(load_compressed(path), torch.nn.Linear)


def test_channel_pruned_round_trip(tmp_path):
    "A model made physically smaller by torch-pruning is a plain model: same outputs, smaller file."
    pytest.importorskip('torch_pruning')
    from robustcompress_nb.layers import prune_channels
    torch.manual_seed(0)
    dense, x = get_model('lenet_atmc', input_shape=(1, 28, 28), n_classes=10).eval(), torch.rand(4, 1, 28, 28)
    small = prune_channels(dense, x, ratio=0.5).eval()
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in dense.parameters())
    rep_small = save_compressed(small, tmp_path / 'small.rcnb')
    rep_dense = save_compressed(dense, tmp_path / 'dense.rcnb')
    assert torch.equal(load_compressed(tmp_path / 'small.rcnb')(x), small(x))
    assert rep_small['file_bytes'] < rep_dense['file_bytes'] / 2
