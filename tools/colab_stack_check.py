"""Check the dashboard on Google Colab's widget stack, headless: ipywidgets 7.7.1, plotly 5.24, anywidget 0.9.

Colab cannot be reached from CI, so this runs the dashboard in a virtual environment with Colab's versions:

    python3 -m venv /tmp/colab && /tmp/colab/bin/pip install torch torchvision \
        "ipywidgets==7.7.1" "plotly==5.24.1" "anywidget==0.9.13" scikit-learn numpy tqdm "torch-pruning>=1.6" "numba>=0.60" fastcore ipython \
        && /tmp/colab/bin/pip install --no-deps -e . && OMP_NUM_THREADS=1 /tmp/colab/bin/python tools/colab_stack_check.py

It runs one background run with the automatic backend (FigureWidget outside Colab), then pretends to be Colab
(`google.colab` in sys.modules) and checks that the static backend is chosen and draws.
"""
import sys, types, torch
torch.set_num_threads(1)
import ipywidgets, plotly, anywidget
print('ipywidgets', ipywidgets.__version__, 'plotly', plotly.__version__, 'anywidget', anywidget.__version__)
from robustcompress_nb.data import get_data
from robustcompress_nb.dashboard import Dashboard, pick_backend
d = get_data('digits', n_train=256, n_test=128, batch_size=64, seed=0)
assert pick_backend() == 'widget', pick_backend()
dash = Dashboard(d, 'small_cnn', method='AL0', cr=0.05, epochs=1, steps=2, n_eval_epoch=64, n_eval=128, eval_steps=5, refresh_s=0.0)
print('backend', dash.backend, type(dash.figs['train'].figure).__name__)
dash.start(); assert dash.wait(300)
print([r['label'] for r in dash.rows], len(dash.figs['train'].figure.data[0].x), 'trade traces', len(dash.figs['trade'].figure.data))
sys.modules['google.colab'] = types.ModuleType('google.colab')
assert pick_backend() == 'static'
d2 = Dashboard(d, 'small_cnn', method='ATMC', bits=4, cr=0.01, epochs=1, steps=1, n_eval_epoch=0, n_eval=64, eval_steps=2, threaded=False)
assert d2.backend == 'static'; d2.start()
print([r['label'] for r in d2.rows], 'html bytes', len(d2.figs['train'].widget.outputs[0]['data']['text/html']), 'status:', d2.status.value[:80])
assert [r['label'] for r in d2.rows] == ['DA', 'ATMC-4'] and '"name":"loss"' in d2.figs['train'].widget.outputs[0]['data']['text/html']
print('ok: the dashboard works on this stack')
