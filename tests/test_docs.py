"""The documentation builds offline: every notebook in the sidebar, processed as nbdev processes it for the docs and
rendered to HTML without errors; every public function and class has a docstring and a show_doc entry
(tools/docs.py). The pages read like the site: each class once, as `class Name(`, with its methods under it; links
between pages point to the local .html pages; images copied; KaTeX and plotly.js local; a sidebar and prev / next.
Pages are then opened in chromium (when present), with every network request refused: the API page is checked for
its entries, a tutorial page for rendered maths (KaTeX elements, no raw `$...$` left); the screenshots are left in
$RCNB_ARTIFACTS (default tests/artifacts/)."""
import os
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
ARTIFACTS = Path(os.environ.get('RCNB_ARTIFACTS', ROOT / 'tests' / 'artifacts'))


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    import docs
    out = tmp_path_factory.mktemp('site')
    cwd = os.getcwd(); os.chdir(ROOT)
    try: problems = docs.build(out, verbose=False)
    finally: os.chdir(cwd)
    return out, problems


def test_docs_build_offline(site):
    out, problems = site
    assert not problems, '\n'.join(problems)
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob('*.html'))
    assert 'index.html' in pages and 'tutorials/05_dashboard.html' in pages, pages


def _text(html): return re.sub(r'<[^>]+>', '', html)


def test_docs_site_like(site):
    out, _ = site
    pages = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob('*.html')}
    for name, html in pages.items():
        assert not re.search(r'href="(?!https?:)[^"]*\.ipynb[#"]', html), f"{name} links to a notebook"
        assert not re.search(r'<script[^>]*src="[^"]*(mathjax|require)', html, re.I), name
        assert not re.search(r'<script[^>]*src="https?://|import "https?://', html), name   # no script from the network
        assert 'class="rc-sidebar"' in html and 'rc-prevnext' in html, name
        for src in re.findall(r'(?:src|href)="((?!https?:|#|data:|mailto:)[^"#?]+)', html):   # every local link resolves
            assert (out / name).parent.joinpath(src).resolve().exists(), f"{name}: {src}"
    assert (out / '_static' / 'katex' / 'katex.min.js').is_file() and (out / '_static' / 'plotly.min.js').is_file()
    t05 = pages['tutorials/05_dashboard.html']
    assert 'src="../images/dashboard.png"' in t05 and (out / 'images' / 'dashboard.png').is_file()
    assert 'href="../30_dashboard.html' in t05          # the site's links are local pages
    assert 'href="tutorials/01_adversarial_examples.html"' in pages['index.html']
    # one class, its methods under it, each once
    text = _text(pages['30_dashboard.html'])
    heads = [re.sub(r'<[^>]+>|¶', '', h).strip() for h in re.findall(r'<h[2-4][^>]*>(.*?)</h[2-4]>', pages['30_dashboard.html'], re.S)]
    assert 'class Dashboard(' in text and 'def Dashboard(' not in text
    assert heads.count('Dashboard') == 1
    for m in ('start', 'stop', 'pause', 'resume', 'wait'):
        assert heads.count(f'Dashboard.{m}') == 1 and m not in heads, (m, heads)
        assert heads.index(f'Dashboard.{m}') > heads.index('Dashboard')


_PATCHED_NB = """#| export
class Counter:
    "Counts."
    def __init__(self): self.n = 0

#| export
@patch
def add(self: Counter, k: int = 1):
    "Add `k`."
    self.n += k

@patch_to(Counter)
def reset(self):
    "Back to 0."
    self.n = 0
"""


def _show(name, md):
    import nbformat
    c = nbformat.v4.new_code_cell(f'#| echo: false\n#| output: asis\nshow_doc({name})')
    c.outputs = [nbformat.v4.new_output('display_data', data={'text/markdown': md})]
    return c


def test_organize_patched_methods():
    "fastcore `@patch` methods documented before their class, or twice, end up once each under the class."
    import nbformat, docs
    from fastcore.basics import patch, patch_to
    mod = types.ModuleType('fake_mod'); mod.patch, mod.patch_to = patch, patch_to
    cells = [nbformat.v4.new_code_cell(src) for src in _PATCHED_NB.split('\n\n#| export\n')]
    cells[1].source = '#| export\n' + cells[1].source
    exec(compile(_PATCHED_NB, 'fake_mod', 'exec'), mod.__dict__)
    for f in (mod.Counter, mod.Counter.add): f.__module__ = 'fake_mod'
    patched = docs.patched_names(cells)
    assert patched == {'add': 'Counter', 'reset': 'Counter'}
    sig = lambda n: f"---\n\n### {n}\n\n```python\ndef {n.split('.')[-1]}(\n    k:int=1\n):\n```\n\n*doc*"
    node = nbformat.v4.new_notebook(cells=[_show('Counter.reset', sig('Counter.reset')), _show('add', sig('add')),
                                           nbformat.v4.new_markdown_cell('## Counter'), _show('Counter', sig('Counter')),
                                           _show('Counter.add', sig('Counter.add')), nbformat.v4.new_markdown_cell('the end')])
    node = docs.organize_entries(node, mod, patched)
    mds = [(c.cell_type, c.source if c.cell_type == 'markdown' else c.outputs[0]['data']['text/markdown']) for c in node.cells]
    assert [m for t, m in mds if t == 'markdown'] == ['## Counter', 'the end']
    docs_md = [m for t, m in mds if t == 'code']
    assert len(docs_md) == 3, docs_md                               # the second `add` entry is gone
    assert '```python\nclass Counter(' in docs_md[0]               # the class first, as a class
    assert [re.search(r'^#+ (.*)$', m, re.M).group(1) for m in docs_md] == ['Counter', 'Counter.add', 'Counter.reset']
    assert all(m.count('#### ') == 1 for m in docs_md[1:])         # methods one level below the class


def _browser():
    chromium = os.environ.get('RCNB_CHROMIUM', '/usr/bin/chromium')
    try: from playwright.sync_api import sync_playwright
    except ImportError: sync_playwright = None
    if sync_playwright is None or not Path(chromium).exists():
        if os.environ.get('RCNB_REQUIRE_BROWSER') == '1': pytest.fail('chromium/playwright required but missing')
        pytest.skip('no chromium/playwright')
    return sync_playwright, chromium


def _open(p, chromium, url, refused=None, size=(1300, 1500), timeout=30_000):
    """Chromium (headless) and a page at `url`; with a list `refused`, every request that is not a local file is
    refused and recorded there (the docs must work offline)."""
    b = p.chromium.launch(executable_path=chromium, headless=True, args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
    page = b.new_page(viewport={'width': size[0], 'height': size[1]})
    if refused is not None:
        page.route('**/*', lambda r: r.continue_() if r.request.url.startswith('file:') else (refused.append(r.request.url), r.abort()))
    page.goto(url, timeout=timeout)
    return b, page


def test_docs_page_in_chromium(site):
    out, _ = site
    sync_playwright, chromium = _browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    refused = []
    with sync_playwright() as p:
        b, page = _open(p, chromium, (out / '30_dashboard.html').as_uri(), refused)
        text = page.inner_text('main')
        page.screenshot(path=str(ARTIFACTS / 'docs_30_dashboard.png'))
        b.close()
    for name in ('Dashboard', 'nominal_cr', 'keep_for_cr', 'Throttle', 'LiveLog', 'Dashboard.start', 'class Dashboard('):
        assert name in text, name
    assert 'The exploration dashboard' in text


def test_docs_maths_in_chromium(site):
    "Maths rendered by the vendored KaTeX with the network cut: KaTeX elements, no error, no raw `$...$` left."
    out, _ = site
    sync_playwright, chromium = _browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    refused = []
    with sync_playwright() as p:
        b, page = _open(p, chromium, (out / 'tutorials' / '03_atmc.html').as_uri(), refused)
        page.wait_for_selector('body[data-math="rendered"]', timeout=20000)
        n_katex, n_err = page.locator('.katex').count(), page.locator('.katex-error').count()
        md_text = '\n'.join(page.locator('.jp-MarkdownCell').all_inner_texts())
        first = page.locator('.jp-MarkdownCell .katex-display').first
        first.scroll_into_view_if_needed()
        page.evaluate('window.scrollBy(0, -250)')
        page.screenshot(path=str(ARTIFACTS / 'docs_maths_03_atmc.png'))
        sidebar = page.inner_text('.rc-sidebar'); nxt = page.get_attribute('a[rel="next"]', 'href')
        plots = page.locator('.js-plotly-plot').count()
        b.close()
    assert n_katex > 20 and n_err == 0, (n_katex, n_err)
    assert not re.search(r'\$[^$\n]+\$', md_text), re.findall(r'\$[^$\n]+\$', md_text)[:5]
    assert 'Library reference' in sidebar and 'ATMC' in sidebar and nxt == '04_cstar.html'
    assert plots > 0                                   # plotly figures drawn from the local plotly.js
    assert all(u.startswith('https://colab.research.google.com/') for u in refused), refused   # only the Colab badge


def test_widget_outputs_not_shown():
    "A saved widget view is only its text repr without a kernel: the pages drop it and keep the other outputs."
    import nbformat, docs
    c = nbformat.v4.new_code_cell('live = Dashboard()\nlive')
    c.outputs = [nbformat.v4.new_output('display_data', data={'application/vnd.jupyter.widget-view+json': {'model_id': 'x'},
                                                              'text/plain': 'VBox(children=(...))'}),
                 nbformat.v4.new_output('stream', name='stdout', text='ready\n')]
    node = docs.quarto_like(nbformat.v4.new_notebook(cells=[c]))
    assert [o['output_type'] for o in node.cells[0].outputs] == ['stream']
