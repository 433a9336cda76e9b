"""Execute notebooks in place, saving their outputs: the home page (README.md shows its outputs) and the tutorials
(the docs site shows theirs). A tutorial's install cell is first re-pinned to the package's current version
(tools/course.py): its outputs are that version's. Cells that nbdev_test skips (`#| eval: false`, `#| slow`, the export call) are
skipped here too. Plotly figures are saved for the web (`plotly_mimetype+notebook_connected`: the figure's data
plus plotly.js from its CDN), not with plotly.js inlined (4 MB per notebook).

    OMP_NUM_THREADS=1 python tools/run_nb.py nbs/index.ipynb nbs/tutorials/*.ipynb && nbdev_clean && python tools/readme.py
"""
import os
import re
import sys
import time

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from course import pin_install  # noqa: E402


def _skip(cell):
    if cell.cell_type != 'code': return True
    if 'nbdev_export' + '(' in cell.source: return True
    d = ' '.join(l[2:].strip() for l in cell.source.splitlines() if l.startswith('#|'))
    return bool(re.search(r'\beval:\s*false\b', d) or re.search(r'\bslow\b', d))


def run(path):
    nb, cwd = read_nb(path), os.getcwd()
    pin_install(nb)
    os.chdir(os.path.dirname(os.path.abspath(path)))
    try:
        sh = CaptureShell()
        sh.run_cell("import plotly.io as _pio; _pio.renderers.default = 'plotly_mimetype+notebook_connected'")
        sh.run_all(nb, exc_stop=True, preproc=_skip)
        write_nb(nb, os.path.basename(path))
    finally: os.chdir(cwd)


if __name__ == '__main__':
    for p in sys.argv[1:]:
        t = time.perf_counter(); run(p); print(f"{p}: {time.perf_counter() - t:.0f} s", flush=True)
