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
   in the rendered pages (a rendered `show_doc` heading with its name);
4. the pages read like the site, offline: each class is shown once, as `class Name(`, with its methods (defined in
   the class, with fastcore's `@patch`, or assigned to it) under it as `Name.method`, each once; maths rendered by
   the KaTeX vendored in tools/vendor/katex (no MathJax from a CDN); a sidebar (nbs/sidebar.yml) and previous /
   next links; links to notebooks and to the published site point to the local pages; the images the pages show
   copied beside them (a missing one is a problem); plotly figures load the plotly.js of the installed `plotly`
   package, copied to _static/.

    python tools/docs.py                 # check, and write the pages to _docs_offline/
    python tools/docs.py --out /tmp/site --only 30_dashboard.ipynb
"""
import argparse
import ast
import html as html_lib
import importlib
import inspect
import json
import os
import re
import shutil
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
TOOLS = Path(__file__).resolve().parent


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
    `#| echo: false` hides a cell's code, other `#|` options are not shown, `{target=...}` link attributes go, widget
    outputs (live only with a kernel; the pages show screenshots instead) are not shown."""
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
        if c.get('outputs'):   # a live widget needs a kernel: without one its output would be its text repr
            c.outputs = [o for o in c.outputs if 'application/vnd.jupyter.widget-view+json' not in o.get('data', {})]
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
            names = {m.replace('\\_', '_') for m in _HEAD.findall(md if isinstance(md, str) else ''.join(md))}
            out |= names | {n.split('.', 1)[1] for n in names if '.' in n}   # `Class.method` documents `method`
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


# ---------------------------------------------------------------------------------------------------------------
# Classes and their methods: one entry per class, `class Name(`, its methods under it as `Name.method`, each once.

_SHOW = re.compile(r'^show_doc\(\s*([A-Za-z_][\w.]*)', re.M)


def default_exp(name: str):
    "The module a notebook exports to (`#| default_exp`), or None."
    for c in read_nb(nbs_path() / name).cells:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', c.source, re.M)
        if c.cell_type == 'code' and m: return m.group(1)
    return None


def patched_names(cells) -> dict[str, str]:
    "{function name: class name} for the functions that exported `cells` add to a class with `@patch` / `@patch_to(Class)`."
    out = {}
    for c in cells:
        if c.cell_type != 'code' or '#| export' not in c.source: continue
        src = '\n'.join(l for l in c.source.splitlines() if not l.lstrip().startswith(('#|', '%', '!')))
        try: tree = ast.parse(src)
        except SyntaxError: continue
        for f in tree.body:
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
            for d in f.decorator_list:
                call = d if isinstance(d, ast.Call) else None
                dn = (call.func if call else d)
                dn = dn.id if isinstance(dn, ast.Name) else dn.attr if isinstance(dn, ast.Attribute) else ''
                if dn == 'patch' and f.args.args and isinstance(f.args.args[0].annotation, ast.Name):
                    out[f.name] = f.args.args[0].annotation.id
                elif dn == 'patch_to' and call and call.args and isinstance(call.args[0], ast.Name):
                    out[f.name] = call.args[0].id
    return out


def documented(expr: str, mod, patched: dict[str, str]):
    """What `show_doc(expr)` documents: ('class', 'Name'), ('method', 'Class.name') or ('function', 'name').
    A bare name is a method when the notebook patches it into a class, or when a class of the module holds that very
    function (`Class.name = name`)."""
    if '.' in expr: return 'method', expr
    if expr in patched: return 'method', f"{patched[expr]}.{expr}"
    obj = getattr(mod, expr, None) if mod is not None else None
    if inspect.isclass(obj): return 'class', expr
    if obj is not None and mod is not None:
        for cname, cls in inspect.getmembers(mod, inspect.isclass):
            if cls.__module__ != mod.__name__: continue
            attr = cls.__dict__.get(expr)
            if attr is obj or getattr(attr, 'fget', None) is obj: return 'method', f"{cname}.{expr}"
    return 'function', expr


def _set_output_md(cell, fn):
    for o in cell.get('outputs', []):
        md = o.get('data', {}).get('text/markdown')
        if md is not None: o['data']['text/markdown'] = fn(md if isinstance(md, str) else ''.join(md))


def organize_api(node, nb_name: str):
    """Rewrite the show_doc entries of a processed library page: a class's signature reads `class Name(`; a method
    (bare `show_doc(start)` of a function patched or assigned into a class, or `show_doc(Class.start)`) is headed
    `Class.start` one level below the class; a method documented before its class moves right after the class's
    entry (in source order); a second entry of the same name is dropped."""
    modname = default_exp(nb_name)
    if modname is None: return node
    mod = importlib.import_module(f"{get_config().lib_name}.{modname}")
    return organize_entries(node, mod, patched_names(read_nb(nbs_path() / nb_name).cells))


def organize_entries(node, mod, patched: dict[str, str]):
    "`organize_api` for the module `mod` and the patched methods `patched` ({name: class name})."
    entries = []          # (cell, kind, qualified name)
    for c in node.cells:
        m = _SHOW.search(c.source) if c.cell_type == 'code' and c.get('outputs') else None
        entries.append((c, *documented(m.group(1), mod, patched)) if m else (c, None, None))
    classes = {q for _, k, q in entries if k == 'class'}
    seen, pending, cells = set(), {}, []
    for c, kind, q in entries:
        if kind is None: cells.append(c); continue
        if q in seen: continue
        if kind == 'class':
            _set_output_md(c, lambda md: re.sub(r'(```python\n)def (\w+\()', r'\1class \2', md, count=1))
            seen.add(q); cells.append(c)
            for mc in sorted(pending.pop(q, []), key=lambda x: x[1]): seen.add(mc[2]); cells.append(mc[0])
            continue
        if kind == 'method':
            cls, meth = q.split('.', 1)
            def head(md, title=f"{cls}.{meth}".replace('_', '\\_')):
                return re.sub(r'^#{2,4}\s+\S+[ \t]*$', lambda h: f"#### {title}", md, count=1, flags=re.M)   # below the class's ###
            _set_output_md(c, head)
            if cls in classes and cls not in seen:   # its class comes later on the page: move it under the class
                obj = getattr(getattr(mod, cls, None), meth, None)
                obj = getattr(obj, 'fget', obj)
                line = getattr(getattr(obj, '__code__', None), 'co_firstlineno', 0)
                if all(x[2] != q for x in pending.get(cls, [])): pending.setdefault(cls, []).append((c, line, q))
                continue
        seen.add(q); cells.append(c)
    for lst in pending.values(): cells += [x[0] for x in lst]     # (their class has no entry: keep them)
    node.cells = cells
    return node


# ---------------------------------------------------------------------------------------------------------------
# The site around the pages: titles, sidebar, previous / next, links, images, static files.

def page_of(name: str) -> str: return str(Path(name).with_suffix('.html').as_posix())


def site_page(name: str) -> str:
    "The page Quarto publishes for a notebook: numeric prefix dropped (`30_dashboard.ipynb` -> `dashboard.html`)."
    p = Path(name)
    return (p.parent / (re.sub(r'^\d+_', '', p.stem) + '.html')).as_posix()


def title_of(name: str) -> str:
    first = next((c for c in read_nb(nbs_path() / name).cells if c.cell_type == 'markdown'), None)
    line = first.source.splitlines()[0] if first is not None and first.source.strip() else name
    return line[2:].strip() if line.startswith('# ') else Path(name).stem


def _rel(target: str, frm: str) -> str: return os.path.relpath(target, os.path.dirname(frm) or '.').replace(os.sep, '/')


def sidebar_html(current: str, titles: dict[str, str]) -> str:
    "The sidebar of nbs/sidebar.yml as nested lists, links relative to `current` (a page path), the current one marked."
    def item(href):
        cls = ' class="rc-current" aria-current="page"' if page_of(href) == current else ''
        return f'<li><a href="{_rel(page_of(href), current)}"{cls}>{html_lib.escape(titles.get(href, href))}</a></li>'
    def walk(items):
        out = []
        for it in items:
            if isinstance(it, str): out.append(item(it))
            elif isinstance(it, dict) and 'section' in it:
                out.append(f'<li><span class="rc-section">{html_lib.escape(str(it["section"]))}</span><ul>{"".join(walk(it.get("contents", [])))}</ul></li>')
            elif isinstance(it, dict) and 'href' in it: out.append(item(it['href']))
        return out
    doc = yaml.safe_load((nbs_path() / 'sidebar.yml').read_text())
    brand = f'<a class="rc-brand" href="{_rel("index.html", current)}">{html_lib.escape(get_config().lib_name)}</a>'
    return brand + '<ul>' + ''.join(walk(doc['website']['sidebar']['contents'])) + '</ul>'


def prevnext_html(name: str, order: list[str], titles: dict[str, str]) -> str:
    if name not in order: return ''
    i, cur = order.index(name), page_of(name)
    prev = f'<a rel="prev" href="{_rel(page_of(order[i - 1]), cur)}">&larr; {html_lib.escape(titles[order[i - 1]])}</a>' if i > 0 else '<span></span>'
    nxt = f'<a rel="next" href="{_rel(page_of(order[i + 1]), cur)}">{html_lib.escape(titles[order[i + 1]])} &rarr;</a>' if i + 1 < len(order) else '<span></span>'
    return prev + nxt


_HREF = re.compile(r'(href|src)="([^"#?]*)((?:[?#][^"]*)?)"')
_PLOTLY_CDN = re.compile(r'<script[^>]*src="https://cdn\.plot\.ly/plotly-[\d.]+(?:\.min)?\.js"[^>]*></script>'
                         r'|<script type="module">import "https://cdn\.plot\.ly/plotly-[\d.]+(?:\.min)?(?:\.js)?"</script>')
_MATHJAX_CDN = re.compile(r'<script[^>]*src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"[^>]*></script>')
_IDS = re.compile(r'\bid="([^"]+)"')


def localize(html: str, name: str, site_to_local: dict[str, str], ids: dict[str, set[str]], root: str):
    """Links of a page made local: `X.ipynb` -> `X.html`; the published site's pages -> the local pages (their
    `#anchors` matched case-insensitively to the target's ids); plotly.js from _static/, MathJax scripts of plotly
    outputs dropped. Returns the html and the local files it refers to (relative to nbs/, for images)."""
    cfg, page = get_config(), page_of(name)
    site = cfg.doc_host.rstrip('/') + '/' + (cfg.doc_baseurl.strip('/') + '/').lstrip('/')   # the published site's root
    n = iter(range(10 ** 6))   # plotly.js once per page (every figure's output repeats its loader)
    html = _PLOTLY_CDN.sub(lambda m: '' if next(n) else f'<script charset="utf-8" src="{root}_static/plotly.min.js"></script>', html)
    html = _MATHJAX_CDN.sub('', html)
    assets = []
    def fix(m):
        attr, url, frag = m.groups()
        target = None
        if url.startswith(site): target = site_to_local.get(url[len(site):] or 'index.html')
        elif not re.match(r'^[a-z][a-z0-9+.-]*:|^/|^$', url, re.I):
            if url.endswith('.ipynb'):
                target = (Path(os.path.dirname(name)) / url).as_posix()
                target = page_of(os.path.normpath(target))
            else:
                local = os.path.normpath(os.path.join(os.path.dirname(name), url)).replace(os.sep, '/')
                if not (local.startswith('_static/') or url.endswith('.html')): assets.append(local)
                elif url.endswith('.html') and local not in site_to_local.values(): assets.append(local)   # reported
                return m.group(0)
        if target is None: return m.group(0)
        if frag.startswith('#') and target in ids:
            low = {i.lower(): i for i in ids[target]}
            frag = '#' + low.get(frag[1:].lower(), frag[1:])
        return f'{attr}="{_rel(target, page)}{frag}"'
    return _HREF.sub(fix, html), assets


def copy_static(out: Path):
    "KaTeX (vendored), the site's css and the installed plotly's plotly.js into out/_static/."
    st = out / '_static'
    shutil.copytree(TOOLS / 'vendor' / 'katex', st / 'katex', dirs_exist_ok=True)
    shutil.copy(TOOLS / 'docs_template' / 'site.css', st / 'site.css')
    import plotly
    js = Path(plotly.__file__).parent / 'package_data' / 'plotly.min.js'
    if js.exists(): shutil.copy(js, st / 'plotly.min.js')


def build(out: Path, only=None, verbose=True) -> list[str]:
    "Process and render the notebooks to `out`; returns the problems found (empty: all good)."
    problems = check_sidebar() + check_titles()
    from traitlets.config import Config
    cfg = Config(); cfg.TagRemovePreprocessor.enabled = True; cfg.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    exporter = HTMLExporter(config=cfg, template_name='rcnb', extra_template_basedirs=[str(TOOLS / 'docs_template')],
                            exclude_input_prompt=True, exclude_output_prompt=True)
    shown, names = set(), only or all_notebooks()
    order = [n for n in sidebar_entries() if n in set(all_notebooks())]
    titles = {n: title_of(n) for n in all_notebooks()}
    site_to_local = {site_page(n): page_of(n) for n in all_notebooks()}
    pages, ids = {}, {}
    for name in names:
        t = time.perf_counter()
        try:
            node = organize_api(process(name), name)
            page = page_of(name)
            root = '../' * page.count('/')   # from the page to the site's root
            res = {'metadata': {'name': titles.get(name, name)},
                   'rcnb': {'root': root, 'sidebar': sidebar_html(page, titles), 'prevnext': prevnext_html(name, order, titles)}}
            html, _ = exporter.from_notebook_node(quarto_like(node), resources=res)
        except Exception as e:
            problems.append(f"{name}: processing/rendering failed: {type(e).__name__}: {str(e)[:400]}")
            continue
        shown |= shown_names(node)
        pages[name] = (html, root, time.perf_counter() - t)
        ids[page_of(name)] = set(_IDS.findall(html))
    out.mkdir(parents=True, exist_ok=True)
    copy_static(out)
    for name, (html, root, dt) in pages.items():
        html, assets = localize(html, name, site_to_local, ids, root)
        for a in assets:   # images and other files the page shows, next to it as in nbs/
            src = nbs_path() / a
            if a.endswith('.html'): problems.append(f"{name}: links to {a}, which is not a page of the docs"); continue
            if a.startswith('..') or not src.is_file(): problems.append(f"{name}: refers to {a}, which is not a file under nbs/"); continue
            (out / a).parent.mkdir(parents=True, exist_ok=True); shutil.copy(src, out / a)
        dst = out / page_of(name)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(html)
        if verbose: print(f"  {name:40s} {dt:5.1f} s  {len(html) / 1024:7.0f} KiB -> {dst}", flush=True)
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
