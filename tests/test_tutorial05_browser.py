"""Tutorial 05 as a student meets it: opened in JupyterLab, Run All, then the live dashboard at the top of the lesson
is used with the mouse: Start, the live curves fill, Stop. Screenshots in $RCNB_ARTIFACTS (default tests/artifacts/):
tutorial05_after_run_all.png (the widget after Run All), tutorial05_live_running.png (a run going) and
tutorial05_after_stop.png.

Slow (Run All executes the whole lesson: a few minutes on a laptop CPU, 10 to 17 minutes on a loaded 2-core machine):
runs only with RCNB_TUTORIAL_BROWSER=1 (.ci/run leaves it off to keep CI short). JupyterLab, chromium and playwright as in tests/test_dashboard_browser.py, whose server fixture
this reuses (the lesson replaces the notebook it serves).
"""
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from test_dashboard_browser import ARTIFACTS, CHROMIUM, TRACE_POINTS, TRACKER, _until, lab  # noqa: F401 (`lab` is a fixture)
from test_docs import _open

TUTORIAL = Path(__file__).resolve().parent.parent / 'nbs' / 'tutorials' / '05_dashboard.ipynb'

pytestmark = pytest.mark.skipif(os.environ.get('RCNB_TUTORIAL_BROWSER') != '1',
                                reason='slow: set RCNB_TUTORIAL_BROWSER=1 to run tutorial 05 in JupyterLab')


@pytest.fixture
def lab05(lab, tmp_path):
    shutil.copy(TUTORIAL, tmp_path / 'dashboard.ipynb')     # the server reads the file when the page opens it
    # every cell kept in the page (JupyterLab 4 otherwise skips drawing the cells out of view, the live widget among
    # them, while Run All scrolls down the lesson)
    nbset = tmp_path / 'settings' / '@jupyterlab' / 'notebook-extension'
    nbset.mkdir(parents=True, exist_ok=True)
    (nbset / 'tracker.jupyterlab-settings').write_text(json.dumps({**TRACKER, 'windowingMode': 'none'}))
    return lab


def _body(page) -> str: return page.evaluate('() => document.body.innerText')


def test_tutorial05_run_all_then_live(lab05):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser, page = _open(p, CHROMIUM, lab05, size=(1600, 1300), timeout=120_000)
        try:
            page.locator('.jp-Notebook .jp-CodeCell').first.wait_for(timeout=120_000)
            prompts = page.locator('.jp-Notebook .jp-CodeCell .jp-InputPrompt')
            for _ in range(12):   # Run All from the menu, again until the kernel has taken it (it may still be connecting)
                page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
                page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
                try:
                    page.wait_for_function("e => /\\[[*0-9]+\\]/.test(e.innerText)", arg=prompts.first.element_handle(), timeout=10_000)
                    break
                except Exception: page.keyboard.press('Escape')
            start = page.locator('button.jupyter-button', has_text='Start').first
            start.wait_for(state='attached', timeout=300_000)  # the live dashboard, the lesson's first output
            n = prompts.count()
            # finished: no cell queued or running, and the last cell numbered (the solutions' prompts are hidden with
            # their source: their innerText is empty)
            _until(lambda: (lambda ts: all(t.strip() not in ('[*]:', '[ ]:') for t in ts)
                            and re.fullmatch(r'\[\d+\]:', ts[-1].strip()) is not None)(prompts.all_inner_texts()),
                   'Run All finished', timeout=1500)   # minutes on a laptop; far more on a shared 2-core box
            text = _body(page)
            assert 'Traceback' not in text, text[text.find('Traceback') - 500:][:3000]
            assert n == prompts.count()
            start.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / 'tutorial05_after_run_all.png'))
            # the student's path: press Start on the live dashboard, watch the curve fill, press Stop
            n0 = page.evaluate(TRACE_POINTS)[0][0]
            start.click()
            page.wait_for_function(f"() => ({TRACE_POINTS})()[0][0] > {n0} + 2", timeout=180_000)   # a few live points
            start.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / 'tutorial05_live_running.png'))
            page.locator('button.jupyter-button', has_text='Stop').first.click()
            # Start comes back when the stopped run has finished (the lesson's later cells print 'stopped' too, so that
            # word proves nothing); then this dashboard's own stop message is gone
            _until(start.is_enabled, 'Start enabled again after the stop', timeout=300)
            _until(lambda: 'stopping after this step' not in _body(page), 'the stop message cleared')
            start.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / 'tutorial05_after_stop.png'))
        except BaseException:   # what the page showed when it failed, for whoever reads the log
            page.screenshot(path=str(ARTIFACTS / 'tutorial05_failure.png'), full_page=True)
            raise
        finally:
            browser.close()
