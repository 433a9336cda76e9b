"""Build and check the documentation offline (no Quarto): what `nbdev_docs` would publish, as HTML.

The site is built by Quarto in CI (.github/workflows/deploy.yaml). Quarto cannot be installed everywhere, so this
script does the part that can fail for content reasons without it:
1. every notebook in nbs/ is listed in nbs/sidebar.yml (library reference, then tutorials), and every sidebar
   entry exists;
2. every notebook is processed exactly as nbdev processes it for the docs (`nbdev.processors.FilterDefaults`:
   hidden cells removed, show_doc cells added after exported definitions and executed, directives applied), and
   rendered to HTML with nbconvert (with what Quarto does on top: front matter as title, `echo: false` cells
   without code); any error fails;
3. every public function and class of the library (`__all__` of each module) has a docstring and a show_doc entry
   in the rendered pages (a rendered `show_doc` heading with its name).

    python tools/docs.py                 # check, and write the pages to _docs_offline/
    python tools/docs.py --out /tmp/site --only 30_dashboard.ipynb
"""
import argparse
import importlib
import inspect
import json
import re
import sys
import time
from pathlib import Path

import nbformat
import yaml
from execnb.nbio import read_nb
from nbconvert import HTMLExporter
from nbdev.config import get_config
from nbdev.processors import FilterDefaults

ROOT = Path(__file__).resolve().parent.parent


def nbs_path() -> Path: return get_config().nbs_path


def all_notebooks() -> list[str]:
    "Notebooks of nbs/ (relative paths), skipping names and folders that start with '_' or '.', as nbdev does."
    base = nbs_path()
    return sorted(str(p.relative_to(base)) for p in base.rglob('*.ipynb')
                  if not any(part.startswith(('_', '.')) for part in p.relative_to(base).parts))


def sidebar_entries() -> list[str]:
    "The notebooks named in nbs/sidebar.yml, in order."
    def walk(items):
        for it in items:
            if isinstance(it, str): yield it
            elif isinstance(it, dict):
                if 'href' in it: yield it['href']
                yield from walk(it.get('contents', []))
    doc = yaml.safe_load((nbs_path() / 'sidebar.yml').read_text())
    return list(walk(doc['website']['sidebar']['contents']))


def check_sidebar() -> list[str]:
    have, listed = set(all_notebooks()), sidebar_entries()
    problems = [f"sidebar.yml: {n} is not in the sidebar" for n in sorted(have - set(listed))]
    problems += [f"sidebar.yml lists {n}, which does not exist" for n in listed if n not in have]
    problems += [f"sidebar.yml lists {n} twice" for n in sorted({n for n in listed if listed.count(n) > 1})]
    return problems


def check_titles() -> list[str]:
    "nbdev takes a page's title and description from its first cell (`# Title`, `> description`), one line each."
    problems = []
    for name in all_notebooks():
        nb = read_nb(nbs_path() / name)
        first = next((c for c in nb.cells if c.cell_type == 'markdown'), None)
        lines = first.source.splitlines() if first is not None else []
        if not lines or not lines[0].startswith('# '): problems.append(f"{name}: the first markdown cell must start with '# Title'")
        elif sum(l.startswith('> ') for l in lines) > 1:
            problems.append(f"{name}: the '> description' spans several lines; nbdev keeps only the first: make it one line")
    return problems


def process(name: str):
    "The notebook `name` processed for the docs by nbdev's own processors."
    nb = read_nb(nbs_path() / name)
    FilterDefaults()(nb)
    for d in [nb, *nb.cells]:   # the processors' bookkeeping attributes (idx_, has_docs_, ...) are not notebook content
        for k in [k for k in d if k.endswith('_') or k == 'has_sd']: d.pop(k)
    nb.metadata.pop('widgets', None)
    return nbformat.reads(json.dumps(nb), as_version=4)


_FRONT = re.compile(r'^---\n(.*?)\n---\s*$', re.S)


def quarto_like(node):
    """What Quarto does with a processed notebook that plain nbconvert would not: the front matter becomes the title,
    `#| echo: false` hides a cell's code, other `#|` options are not shown, `{target=...}` link attributes go."""
    cells = []
    for c in node.cells:
        if c.cell_type == 'raw' and _FRONT.match(c.source):
            fm = yaml.safe_load(_FRONT.match(c.source).group(1)) or {}
            c = nbformat.v4.new_markdown_cell(f"# {fm.get('title', '')}\n\n> {fm.get('description', '')}")
        elif c.cell_type == 'code':
            opts = [l for l in c.source.splitlines() if l.startswith('#|')]
            c.source = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|'))
            if any(re.match(r'#\|\s*echo:\s*false', o) for o in opts):
                c.metadata.setdefault('tags', []).append('remove_input')
        if c.cell_type == 'markdown': c.source = re.sub(r'\{target="_blank"[^}]*\}', '', c.source)
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown')
            if isinstance(md, str): o['data']['text/markdown'] = re.sub(r'\{target="_blank"[^}]*\}', '', md)
        cells.append(c)
    node.cells = cells
    return node


_HEAD = re.compile(r'^#{2,4}\s+(\S+)', re.M)


def shown_names(node) -> set[str]:
    "Names whose show_doc output (a Markdown heading) is on the page."
    out = set()
    for c in node.cells:
        for o in c.get('outputs', []):
            md = o.get('data', {}).get('text/markdown', '')
            out |= {m.replace('\\_', '_') for m in _HEAD.findall(md if isinstance(md, str) else ''.join(md))}
    return out


def public_callables() -> dict[str, list[str]]:
    "{module: public function/class names defined there} from each module's `__all__`."
    cfg = get_config()
    out = {}
    for py in sorted((cfg.lib_path).glob('[!_]*.py')):
        mod = importlib.import_module(f"{cfg.lib_name}.{py.stem}")
        out[mod.__name__] = [n for n in getattr(mod, '__all__', [])
                             if (inspect.isfunction(getattr(mod, n, None)) or inspect.isclass(getattr(mod, n, None)))
                             and getattr(getattr(mod, n), '__module__', None) == mod.__name__]
    return out


def build(out: Path, only=None, verbose=True) -> list[str]:
    "Process and render the notebooks to `out`; returns the problems found (empty: all good)."
    problems = check_sidebar() + check_titles()
    from traitlets.config import Config
    cfg = Config(); cfg.TagRemovePreprocessor.enabled = True; cfg.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    exporter = HTMLExporter(config=cfg, template_name='lab', exclude_input_prompt=True, exclude_output_prompt=True)
    shown, names = set(), only or all_notebooks()
    for name in names:
        t = time.perf_counter()
        try:
            node = process(name)
            html, _ = exporter.from_notebook_node(quarto_like(node))
        except Exception as e:
            problems.append(f"{name}: processing/rendering failed: {type(e).__name__}: {str(e)[:400]}")
            continue
        shown |= shown_names(node)
        dst = out / Path(name).with_suffix('.html')
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(html)
        if verbose: print(f"  {name:40s} {time.perf_counter() - t:5.1f} s  {len(html) / 1024:7.0f} KiB -> {dst}", flush=True)
    if only is None:
        for mod, ns in public_callables().items():
            m = importlib.import_module(mod)
            for n in ns:
                if not (inspect.getdoc(getattr(m, n)) or '').strip(): problems.append(f"{mod}.{n} has no docstring")
                if n not in shown: problems.append(f"{mod}.{n} has no show_doc entry in the docs")
    return problems


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=str(ROOT / '_docs_offline'))
    p.add_argument('--only', nargs='+', default=None, help='notebooks (relative to nbs/) to render; skips the API coverage check')
    a = p.parse_args(argv)
    problems = build(Path(a.out), a.only)
    for x in problems: print('PROBLEM:', x, file=sys.stderr)
    print(f"{'FAILED' if problems else 'ok'}: {len(problems)} problem(s); pages in {a.out}")
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
