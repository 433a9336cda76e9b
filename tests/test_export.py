"""Integration tests of robustcompress_nb.export: fresh interpreters, every kind of model, and crafted files.

A file never runs code: each crafted file below is refused with a ValueError naming the field, quickly, with
little memory, and a marker file that an executed payload would write never appears."""
import base64, hashlib, json, os, pickle, struct, subprocess, sys, textwrap, time, tracemalloc, zlib
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
import torch.nn as nn

import robustcompress_nb
from robustcompress_nb.export import (save_compressed, load_compressed, load_tensors, read_header, MAX_HEADER_BYTES,
                                      _write)
from robustcompress_nb.layers import atmc_factorize, atmc_factors, to_lowrank, ATMCLayer, LowRankLinear, Tucker2Conv2d
from robustcompress_nb.models import get_model, count_weights, compressible_layers
from robustcompress_nb.projections import project_sparse
from robustcompress_nb.quantize import quantize_kmeans, dequantize
from robustcompress_nb.size import bit_patterns, pruned_names

ROOT = str(Path(robustcompress_nb.__file__).resolve().parent.parent)   # children import the same package
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))


def _lenet():
    return get_model('lenet_atmc', input_shape=(1, 28, 28), n_classes=10, seed=0).eval()


def _sparsify(tensors, k, bits=None):
    with torch.no_grad():
        for t, p in zip(tensors, project_sparse([t.detach() for t in tensors], k=k)):
            t.copy_(p if bits is None else dequantize(*quantize_kmeans(p, bits)))


def _atmc_lenet():
    model = atmc_factorize(_lenet()).eval()
    _sparsify(atmc_factors(model), count_weights(_lenet()) // 100, bits=4)
    return model


def _same(a: nn.Module, b: nn.Module):
    "Same module classes in the same places and the same bits in every tensor."
    assert [(n, type(m)) for n, m in a.named_modules()] == [(n, type(m)) for n, m in b.named_modules()]
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for n in sa: assert sa[n].dtype == sb[n].dtype and np.array_equal(bit_patterns(sa[n]), bit_patterns(sb[n])), n


# ---------------------------------------------------------------- round trips of every kind of model

def _kinds():
    x = torch.rand(4, 1, 28, 28)
    dense = _lenet()
    weights = lambda m: [l.weight for l in compressible_layers(m).values()]
    sparse = _lenet(); _sparsify(weights(sparse), count_weights(dense) // 20)
    quant = _lenet(); _sparsify(weights(quant), count_weights(dense) // 20, bits=4)
    masked = _lenet()
    for l in compressible_layers(masked).values(): torch.nn.utils.prune.l1_unstructured(l, 'weight', amount=0.8)
    kinds = {'dense': dense, 'sparse': sparse, 'quantized': quant, 'atmc': _atmc_lenet(),
             'lowrank': to_lowrank(dense, {'fc1': 20, 'fc2': 5}).eval(),
             'tucker2': to_lowrank(dense, {'conv2': (10, 8)}).eval(), 'masks': masked,
             # full modes store no factor: conv1 (1 input channel) keeps only U_out; conv2's core carries the bias
             'tucker2_full_modes': to_lowrank(dense, {'conv1': (8, 1), 'conv2': (50, 6)}).eval()}
    return kinds, x


@pytest.mark.parametrize('kind', ['dense', 'sparse', 'quantized', 'atmc', 'lowrank', 'tucker2', 'tucker2_full_modes', 'masks'])
def test_round_trip_every_kind(tmp_path, kind):
    "Each kind comes back from its registered name + description alone: same classes, same bits, same outputs."
    kinds, x = _kinds()
    model = kinds[kind]
    rep = save_compressed(model, tmp_path / 'm.rcnb')
    back = load_compressed(tmp_path / 'm.rcnb')
    assert torch.equal(back(x), model(x))
    if kind == 'masks':
        assert not any(pruned_names(m) for m in back.modules())
        assert torch.equal(back.fc1.weight, model.fc1.weight)
    else: _same(model, back)
    assert back.config == model.config
    assert rep['file_bytes'] == (tmp_path / 'm.rcnb').stat().st_size
    assert 0 <= rep['tensor_bytes'] - rep['honest_bytes'] < 3 * len(rep['tensors'])
    expected = {'atmc': ATMCLayer, 'lowrank': LowRankLinear, 'tucker2': Tucker2Conv2d, 'tucker2_full_modes': Tucker2Conv2d}.get(kind)
    if expected: assert any(isinstance(m, expected) for m in back.modules())


def test_fresh_process_reads_the_same_model(tmp_path):
    "A new interpreter rebuilds the same function from the file and the package's own code."
    model, x = _atmc_lenet(), torch.rand(4, 1, 28, 28)
    rep = save_compressed(model, tmp_path / 'm.rcnb')
    torch.save(x, tmp_path / 'x.pt'); torch.save(model(x).detach(), tmp_path / 'y.pt')
    code = textwrap.dedent(f"""
        import torch
        from robustcompress_nb.export import load_compressed
        m = load_compressed({str(tmp_path / 'm.rcnb')!r})
        x, y = torch.load({str(tmp_path / 'x.pt')!r}), torch.load({str(tmp_path / 'y.pt')!r})
        assert any(type(l).__module__.startswith('robustcompress_nb') for l in m.modules())
        assert torch.equal(m(x), y), 'outputs differ'
        print('ok')
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'ok'
    assert rep['file_bytes'] == (tmp_path / 'm.rcnb').stat().st_size


def test_failed_save_leaves_old_file(tmp_path):
    "A model that cannot be described raises and leaves an existing file at the path untouched."
    path = tmp_path / 'm.rcnb'
    save_compressed(torch.nn.Linear(3, 2), path)
    before = path.read_bytes()
    bad = torch.nn.Linear(3, 2); bad.config = dict(name='lenet5', act=lambda x: x)
    with pytest.raises(TypeError, match='model.config must hold only JSON values'):
        save_compressed(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ['m.rcnb']     # no temporary file left behind
    umask = os.umask(0); os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask             # the usual permissions, not mkstemp's 0600
    assert isinstance(load_compressed(path), torch.nn.Linear)


def test_channel_pruned_round_trip(tmp_path):
    "A model made physically smaller by torch-pruning: the smaller shapes come from the description."
    pytest.importorskip('torch_pruning')
    from robustcompress_nb.layers import prune_channels
    dense, x = _lenet(), torch.rand(4, 1, 28, 28)
    small = prune_channels(dense, x, ratio=0.5).eval()
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in dense.parameters())
    rep_small = save_compressed(small, tmp_path / 'small.rcnb')
    rep_dense = save_compressed(dense, tmp_path / 'dense.rcnb')
    back = load_compressed(tmp_path / 'small.rcnb')
    assert torch.equal(back(x), small(x))
    _same(small, back)
    assert rep_small['file_bytes'] < rep_dense['file_bytes'] / 2


# ---------------------------------------------------------------- crafted files

@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'good.rcnb'
    save_compressed(_lenet(), path)
    return path


def _craft(src, dst, edit=None, blob=None):
    "A copy of `src` with its description and sections changed by `edit` (or the description replaced by `blob`), with a valid checksum."
    desc, sections = read_header(src), safetensors.torch.load(Path(src).read_bytes())
    if edit: edit(desc, sections)
    _write(dst, desc if blob is None else blob, sections)
    return dst


def _refused(fn, match, marker=None, seconds=2.0, peak_mb=64):
    "fn() raises a ValueError matching `match`, fast, without allocating much (Python/numpy heap), and runs nothing."
    tracemalloc.start()
    t = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match): fn()
        elapsed, (_, peak) = time.perf_counter() - t, tracemalloc.get_traced_memory()
    finally: tracemalloc.stop()
    assert elapsed < seconds, f'took {elapsed:.2f} s'
    assert peak < peak_mb * 2**20, f'allocated {peak / 2**20:.0f} MiB'
    if marker is not None: assert not Path(marker).exists(), 'the payload ran'


def test_old_format_with_pickle_payload_is_refused_and_not_run(tmp_path):
    "A format-1 file whose architecture pickle calls os.system: refused with the re-export message; nothing runs."
    marker = tmp_path / 'code-ran'
    class Payload:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    arch = zlib.compress(pickle.dumps(Payload()))
    head = zlib.compress(json.dumps(dict(format='robustcompress_nb', version=1, architecture=[0, len(arch)], tensors=[])).encode())
    path = tmp_path / 'old.rcnb'
    path.write_bytes(struct.pack('<8sHHIQ32s', b'RCNBPACK', 1, 0, len(head), len(arch), hashlib.sha256(head + arch).digest()) + head + arch)
    for fn in (load_compressed, load_tensors, read_header):
        _refused(lambda: fn(path), 're-export the model with save_compressed', marker)


def test_new_format_naming_code_is_refused_and_not_run(good, tmp_path):
    "Class and model names are looked up in fixed tables, never imported: a file naming os.system runs nothing."
    marker = tmp_path / 'code-ran'
    def as_layer(d, s): d['modules'][0].update(type='posix.system', args={'command': f'touch {marker}'})
    def as_child(d, s): d['modules'][1].update(type='os.system', args={'command': f'touch {marker}'})
    def as_model(d, s): d['model']['registered'] = dict(name=f"__import__('os').system('touch {marker}')", input_shape=[1, 8, 8], n_classes=2)
    _refused(lambda: load_compressed(_craft(good, tmp_path / 'a.rcnb', as_layer)), 'the file holds a posix.system', marker)
    _refused(lambda: load_compressed(_craft(good, tmp_path / 'b.rcnb', as_child)), r"modules\[1\] \('normalize'\): the file holds a os.system", marker)
    _refused(lambda: load_compressed(_craft(good, tmp_path / 'c.rcnb', as_model)), "field 'registered' must name one of models.MODELS", marker)


def test_header_bomb_is_refused_fast(good, tmp_path):
    "A description inflating to 400 MB stops at MAX_HEADER_BYTES: fast, and at most the cap in memory."
    z = zlib.compressobj(9); chunk = b' ' * 2**20
    blob = base64.b64encode(b''.join([z.compress(chunk) for _ in range(400)] + [z.flush()])).decode()
    path = _craft(good, tmp_path / 'bomb.rcnb', blob=blob)
    assert len(blob) < 2**20                                         # 400 MB in under 1 MiB
    for fn in (load_compressed, read_header):
        _refused(lambda: fn(path), 'inflates to more than 16,777,216 bytes', peak_mb=2 * MAX_HEADER_BYTES / 2**20 + 8)


def test_huge_shape_in_a_tiny_file_is_refused_before_allocating(tmp_path):
    "A file of a few hundred bytes declaring 2**32 floats (16 GiB, all zero: 0 bytes of positions) is refused at once."
    desc = dict(format='robustcompress_nb', version=2, model=dict(type='torch.nn.modules.container.Sequential', registered=None),
                modules=[dict(name='', aliases=[], type='torch.nn.modules.container.Sequential', training=False, args={})],
                tensors=[dict(name='w', aliases=[], param=False, requires_grad=False, dtype='float32', shape=[2**32],
                              encoding='sparse', index='coo', pos_width=32, nnz=0, n_values=0, bits=0)])
    path = tmp_path / 'huge.rcnb'
    _write(path, desc, {'w:positions': torch.zeros(0, dtype=torch.uint8), 'w:values': torch.zeros(0)})
    assert path.stat().st_size < 1024
    for fn in (load_compressed, load_tensors):
        _refused(lambda: fn(path), 'its tensors take 17,179,869,184 bytes once decoded, more than max_bytes=2,147,483,648')
    desc['tensors'][0].update(encoding='dense')                       # dense: 16 GiB of data the file does not have
    _write(path, desc, {'w': torch.zeros(0)})
    _refused(lambda: load_tensors(path), r"tensors\[0\] \('w'\): the values section has 0 bytes; its shape and counts need 17,179,869,184")
    entries = {'w': dict(dtype='F32', shape=[2**32], data_offsets=[0, 2**34])}   # safetensors' own header
    _refused(lambda: load_tensors(_forge(tmp_path, entries)), "is truncated: section 'w' ends at data byte 17,179,869,184")


def _forge(tmp_path, entries: dict, data: bytes = b''):
    "A file with safetensors tensor `entries` written by hand (our metadata, no checksum: the checks before it must refuse it)."
    header = json.dumps({'__metadata__': dict(format='robustcompress_nb', version='2'), **entries}).encode()
    path = tmp_path / 'forged.rcnb'
    path.write_bytes(len(header).to_bytes(8, 'little') + header + data)
    return path


def test_huge_header_length_is_refused(tmp_path):
    "A header length field larger than the file, or than MAX_HEADER_BYTES, is refused before reading it."
    plain = tmp_path / 'plain.safetensors'; plain.write_bytes(safetensors.torch.save({'w': torch.zeros(2)}))
    _refused(lambda: read_header(plain), "is not a robustcompress_nb compressed file")   # a plain safetensors file
    path = tmp_path / 'len.rcnb'; path.write_bytes((2**40).to_bytes(8, 'little') + b'{}')
    _refused(lambda: read_header(path), 'is truncated or not a robustcompress_nb file')
    path.write_bytes((MAX_HEADER_BYTES + 1).to_bytes(8, 'little') + b' ' * (MAX_HEADER_BYTES + 1))
    _refused(lambda: read_header(path), 'exceeds MAX_HEADER_BYTES')


@pytest.mark.parametrize('edit,match', [
    (lambda d, s: d['tensors'][1].pop('shape'), r"tensors\[1\] \('conv1.bias'\): missing field 'shape'"),
    (lambda d, s: d.pop('tensors'), "description: missing field 'tensors'"),
    (lambda d, s: d['modules'][2].pop('type'), r"modules\[2\] \('conv1'\): missing field 'type'"),
], ids=['tensor key', 'top-level key', 'module key'])
def test_missing_key(good, tmp_path, edit, match):
    _refused(lambda: load_compressed(_craft(good, tmp_path / 'k.rcnb', edit)), match)


def test_negative_shape(good, tmp_path):
    _refused(lambda: load_tensors(_craft(good, tmp_path / 'n.rcnb', lambda d, s: d['tensors'][0].update(shape=[-20, 1, 5, 5]))),
             r"tensors\[0\] \('conv1.weight'\): field 'shape' must be a list of at most 64 ints >= 0, got \[-20, 1, 5, 5\]")
    _refused(lambda: load_compressed(_craft(good, tmp_path / 'n.rcnb', lambda d, s: d['modules'][2]['args'].update(out_channels=-20))),
             r"modules\[2\] \('conv1'\): field 'args' cannot build a Conv2d")


def test_bad_json(good, tmp_path):
    _refused(lambda: read_header(_craft(good, tmp_path / 'j.rcnb', blob=base64.b64encode(zlib.compress(b'{"model": ')).decode())),
             "field 'description' is not valid JSON")
    data = bytearray(good.read_bytes()); data[8] = ord('[')
    bad = tmp_path / 'j2.rcnb'; bad.write_bytes(bytes(data))
    _refused(lambda: read_header(bad), 'the safetensors header is not valid JSON')


def test_deeply_nested_or_empty_description(good, tmp_path):
    "JSON nested 100,000 deep (a parser's recursion limit) and a description of no model: clear errors, no crash."
    deep = base64.b64encode(zlib.compress(b'[' * 100_000 + b']' * 100_000)).decode()
    _refused(lambda: read_header(_craft(good, tmp_path / 'deep.rcnb', blob=deep)), "field 'description' is not valid JSON")
    _refused(lambda: load_compressed(_craft(good, tmp_path / 'e.rcnb', lambda d, s: (d['modules'].clear(), d['model'].update(registered=None)))),
             "field 'modules' describes no model")


def test_not_zlib(good, tmp_path):
    _refused(lambda: read_header(_craft(good, tmp_path / 'z.rcnb', blob=base64.b64encode(b'plain text').decode())),
             "field 'description' is not zlib data")
    _refused(lambda: read_header(_craft(good, tmp_path / 'z.rcnb', blob='not base64!')), "field 'description' is not base64")


def test_wrong_dtype(good, tmp_path):
    _refused(lambda: load_tensors(_craft(good, tmp_path / 'd.rcnb', lambda d, s: d['tensors'][0].update(dtype='object'))),
             r"tensors\[0\] \('conv1.weight'\): field 'dtype' must be one of")
    def double(d, s): s['conv1.bias'] = s['conv1.bias'].double()
    _refused(lambda: load_tensors(_craft(good, tmp_path / 'd.rcnb', double)), "its values section 'conv1.bias' has dtype F64, expected F32")
    _refused(lambda: load_tensors(_forge(tmp_path, {'w': dict(dtype='PICKLE', shape=[1], data_offsets=[0, 1])}, b'\0')), "safetensors tensor 'w': field 'dtype' must be one of")


def test_truncated(good, tmp_path):
    data = good.read_bytes()
    for cut in (10, len(data) // 2, 30, 4):
        bad = tmp_path / 't.rcnb'; bad.write_bytes(data[:-cut] if cut > 20 else data[:cut])
        _refused(lambda: load_compressed(bad), 'truncated')


def test_bad_checksum(good, tmp_path):
    data = good.read_bytes()
    hlen = int.from_bytes(data[:8], 'little')
    for pos in (data.index(b'"description":"') + 50, 8 + hlen + 7, len(data) - 1):
        bad = bytearray(data); bad[pos] ^= 0x04
        path = tmp_path / 'c.rcnb'; path.write_bytes(bytes(bad))
        _refused(lambda: load_compressed(path), r'corrupted: checksum \(SHA-256\) mismatch')


def test_class_from_main_needs_its_constructor(tmp_path):
    "A model of a class defined in a script (__main__), loaded elsewhere: a clear error naming the class and saying how to load it."
    path = tmp_path / 'net.rcnb'
    script = textwrap.dedent(f"""
        import torch, torch.nn as nn
        from robustcompress_nb.export import save_compressed
        class Net(nn.Module):
            def __init__(self):
                super().__init__(); self.fc = nn.Linear(3, 2)
            def forward(self, x): return 2 * self.fc(x)
        torch.manual_seed(0)
        save_compressed(Net(), {str(path)!r})
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    _refused(lambda: load_compressed(path), r"the file holds a __main__\.Net \(defined in a script or notebook: __main__\).*"
                                            r"pass its constructor, load_compressed\(path, model=Net\)")
    class Net(nn.Module):                                         # the same class, defined here: passed explicitly
        def __init__(self):
            super().__init__(); self.fc = nn.Linear(3, 2)
        def forward(self, x): return 2 * self.fc(x)
    torch.manual_seed(0); expected = nn.Linear(3, 2)
    for how in (Net, {'__main__.Net': Net}, {'Net': Net}):
        m = load_compressed(path, model=how)
        assert isinstance(m, Net) and torch.equal(m.fc.weight, expected.weight)
    _refused(lambda: load_compressed(path, model={'Other': Net}), 'which the allow-list model= does not name')
