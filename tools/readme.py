"""Make README.md from nbs/index.ipynb without Quarto, or check that they agree.

`nbdev_readme` renders the home page with Quarto, which cannot be installed on every machine. This script
takes the offline route: nbdev's own notebook processors (hidden cells and lines, `#|` directives, export
markers and magics removed, exactly as for the docs) followed by nbconvert's Markdown exporter.

    python tools/readme.py          # write README.md
    python tools/readme.py --check  # exit 1 (with a diff) when README.md is out of date
"""
import argparse, difflib, json, sys

import nbformat
from execnb.nbio import read_nb
from nbconvert import MarkdownExporter
from nbdev.config import get_config
from nbdev.process import NBProcessor
from nbdev.processors import clean_magics, hide_, hide_line, rm_export, rm_header_dash, strip_ansi

def render_readme() -> str:
    "The Markdown of the home page notebook, processed as nbdev processes docs."
    cfg = get_config()
    nb = read_nb(cfg.nbs_path/cfg.readme_nb)
    NBProcessor(procs=[clean_magics, hide_, hide_line, rm_header_dash, rm_export, strip_ansi], nb=nb).process()
    for c in nb.cells:  # directives left in code cells (e.g. `#| eval: false`) are not for readers
        if c.cell_type == 'code': c.source = '\n'.join(l for l in c.source.splitlines() if not l.lstrip().startswith('#|'))
    for c in nb.cells:  # interactive plotly figures (and plotly's loader script) cannot show in Markdown: the docs site has them
        if c.get('outputs'):
            c.outputs = [o for o in c.outputs if not ('application/vnd.plotly.v1+json' in o.get('data', {})
                                                      or 'plotly' in ''.join(o.get('data', {}).get('text/html', '')))]
    nb.cells = [c for c in nb.cells if c.source.strip() or c.get('outputs')]
    for c in nb.cells: c.pop('idx_', None)
    node = nbformat.reads(json.dumps(nb), as_version=4)  # rejoins multi-line strings stored as lists
    node.metadata['language_info'] = {'name': 'python'}  # code fences say `python`
    md, _ = MarkdownExporter(exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(node)
    lines = [l.rstrip() for l in md.splitlines()]
    out, blank = [], False  # collapse runs of blank lines
    for l in lines:
        if l == '' and blank: continue
        out.append(l); blank = l == ''
    header = '<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, not this file. -->\n\n'
    return header + '\n'.join(out).strip() + '\n'

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--check', action='store_true', help='fail when README.md differs from the notebook')
    a = p.parse_args(argv)
    readme, want = get_config().config_path/'README.md', render_readme()
    if not a.check:
        readme.write_text(want); print(f'wrote {readme}'); return 0
    have = readme.read_text() if readme.exists() else ''
    if have == want: print('README.md is in sync with nbs/index.ipynb'); return 0
    sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), 'README.md', 'from nbs/index.ipynb'))
    print('\nREADME.md is out of date: run `python tools/readme.py`', file=sys.stderr)
    return 1

if __name__ == '__main__': sys.exit(main())
