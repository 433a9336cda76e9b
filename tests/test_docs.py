"""The documentation builds offline: every notebook in the sidebar, processed as nbdev processes it for the docs and
rendered to HTML without errors; every public function and class has a docstring and a show_doc entry
(tools/docs.py). One page is then opened in chromium (when present) and checked for its API entries; the
screenshot is left in $RCNB_ARTIFACTS (default tests/artifacts/)."""
import os
import sys
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


def test_docs_page_in_chromium(site):
    out, _ = site
    chromium = os.environ.get('RCNB_CHROMIUM', '/usr/bin/chromium')
    try: from playwright.sync_api import sync_playwright
    except ImportError: sync_playwright = None
    if sync_playwright is None or not Path(chromium).exists():
        if os.environ.get('RCNB_REQUIRE_BROWSER') == '1': pytest.fail('chromium/playwright required but missing')
        pytest.skip('no chromium/playwright')
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
        page = b.new_page(viewport={'width': 1200, 'height': 1600})
        page.goto((out / '30_dashboard.html').as_uri())
        text = page.inner_text('body')
        page.screenshot(path=str(ARTIFACTS / 'docs_30_dashboard.png'))
        b.close()
    for name in ('Dashboard', 'nominal_cr', 'keep_for_cr', 'Throttle', 'LiveLog'):
        assert name in text, name
    assert 'The exploration dashboard' in text
