"""The dashboard in a real browser: JupyterLab on 127.0.0.1, Debian's chromium driven by playwright.

Opens a notebook that shows `Dashboard(...)`, runs it, presses Start, waits until the live curves have a point,
pauses the run, checks that it holds and that moving a setting during the run is refused on the page, resumes,
stops it (the "stopping" message goes when the run ends), sets the epochs on the page and runs again to the end,
drags the target-CR slider by 60 px and checks that its readout moved by less than a decade and a half (a fine
control) and that the linked 'weights kept' followed, and saves screenshots in $RCNB_ARTIFACTS (default tests/artifacts/) for people to look at.

Needs `jupyterlab`, `playwright` (installed with PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1: no browser download) and
/usr/bin/chromium (apt). Skipped when they are missing, unless RCNB_REQUIRE_BROWSER=1 (set by .ci/run), which
turns a missing piece into a failure.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get('RCNB_CHROMIUM', '/usr/bin/chromium')
ARTIFACTS = Path(os.environ.get('RCNB_ARTIFACTS', Path(__file__).parent / 'artifacts'))


def _missing():
    miss = []
    if not Path(CHROMIUM).exists(): miss.append(f'chromium ({CHROMIUM})')
    for mod in ('playwright', 'jupyterlab'):
        try: __import__(mod)
        except ImportError: miss.append(mod)
    return miss


def _need_browser():
    miss = _missing()
    if miss:
        if os.environ.get('RCNB_REQUIRE_BROWSER') == '1': pytest.fail(f"browser test required but missing: {', '.join(miss)}")
        pytest.skip(f"missing: {', '.join(miss)}")


# RCNB_DASHBOARD_FULL=1: all digits and more epochs (slower; for the screenshot in the docs, nbs/images/dashboard.png)
CELL = """import os, torch
torch.set_num_threads(1)
from robustcompress_nb.data import get_data
from robustcompress_nb.dashboard import Dashboard
full = os.environ.get('RCNB_DASHBOARD_FULL') == '1'
small = get_data('digits', n_train=None if full else 1024, n_test=None if full else 128, batch_size=64, seed=0)
dash = Dashboard(small, 'small_cnn', method='AL0', cr=0.05, epochs=30, steps=3 if full else 2,
                 n_eval_epoch=128 if full else 64, n_eval=None if full else 128, eval_steps=10 if full else 5,
                 refresh_s=0.3, backend='widget')
dash"""


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


TRACKER = {'autoStartDefaultKernel': True}   # JupyterLab's notebook settings for the tests


@pytest.fixture
def lab(tmp_path):
    _need_browser()
    nb = dict(cells=[dict(cell_type='code', id='dashcell', metadata={}, execution_count=None, outputs=[], source=CELL)],
              metadata=dict(kernelspec=dict(name='python3', display_name='Python 3', language='python')), nbformat=4, nbformat_minor=5)
    (tmp_path / 'dashboard.ipynb').write_text(json.dumps(nb))
    port, token = _free_port(), 'rcnb-test-token'
    settings = tmp_path / 'settings' / '@jupyterlab' / 'apputils-extension'
    settings.mkdir(parents=True)
    (settings / 'notification.jupyterlab-settings').write_text('{"fetchNews": "false", "checkForUpdates": false}')
    # recent JupyterLab asks which kernel to start (a modal dialog over the notebook) unless told to start the
    # notebook's own one
    nbset = tmp_path / 'settings' / '@jupyterlab' / 'notebook-extension'
    nbset.mkdir(parents=True)
    (nbset / 'tracker.jupyterlab-settings').write_text(json.dumps(TRACKER))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / 'cfg'), JUPYTER_RUNTIME_DIR=str(tmp_path / 'rt'),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / 'ws'), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / 'settings'),
               OMP_NUM_THREADS='1')
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--allow-root', '--no-browser', '--ip=127.0.0.1',
                             f'--port={port}', f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp_path}',
                             '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=1); break
            except Exception:
                if proc.poll() is not None: break
                time.sleep(0.25)
        else: pytest.fail('JupyterLab did not start in 60 s')
        if proc.poll() is not None: pytest.fail('JupyterLab exited: ' + (tmp_path / 'lab.log').read_text()[-2000:])
        yield f'{url}/lab/tree/dashboard.ipynb?token={token}'
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / 'lab.log', ARTIFACTS / 'dashboard_lab_server.log')


# the number of points of every trace of every plotly figure on the page
TRACE_POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(gd => (gd.data || []).map(t => (t.x || []).length))"""


def _slider(page, label):
    "The widget box of the slider whose description is `label`."
    return page.locator('.widget-slider', has=page.locator('.widget-label', has_text=label)).first


def _readout(page, label) -> str:
    r = _slider(page, label).locator('.widget-readout')
    return (r.input_value() if r.evaluate('e => e.tagName') == 'INPUT' else r.inner_text()).strip()


def _until(cond, what: str, timeout: float = 30.0):
    "Poll `cond()` until it is true; fail naming `what` after `timeout` seconds."
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end: pytest.fail(f'timed out after {timeout} s waiting for: {what}')
        time.sleep(0.1)


def _paused_step(page) -> int | None:
    "The step at which the status says the run holds, or None."
    m = re.search(r'step (\d+) \(paused\)', page.evaluate('() => document.body.innerText'))
    return int(m.group(1)) if m else None


def test_dashboard_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'])
        page = browser.new_page(viewport={'width': 1600, 'height': 1300})
        try:
            page.goto(lab, timeout=120_000)
            cell = page.locator('.jp-Notebook .jp-CodeCell').first
            cell.wait_for(timeout=120_000)
            # run the cell once the kernel takes it: a run asked for while the kernel is still connecting can be
            # dropped (the prompt stays "[ ]"), so ask again until the prompt shows it queued or done
            prompt = cell.locator('.jp-InputPrompt').first
            for _ in range(12):
                cell.locator('.jp-InputArea-editor').click()
                page.keyboard.press('Control+Enter')
                try:
                    page.wait_for_function("e => /\\[[*0-9]+\\]/.test(e.innerText)", arg=prompt.element_handle(), timeout=10_000)
                    break
                except Exception: pass
            start = page.locator('button.jupyter-button', has_text='Start')
            start.wait_for(timeout=180_000)
            page.wait_for_function(f"() => ({TRACE_POINTS})().length >= 4", timeout=60_000)   # the four figures drew
            page.screenshot(path=str(ARTIFACTS / 'dashboard_ready.png'), full_page=True)
            assert float(_readout(page, 'weights kept')) == 0.05, _readout(page, 'weights kept')   # AL0 at target CR 0.05
            # run 1, long (30 epochs a stage): it is paused, checked and stopped long before it could end, so no check
            # races with its end, however fast the machine
            start.click()
            page.wait_for_function(f"() => ({TRACE_POINTS})()[0][0] >= 1", timeout=120_000)  # the live curve has a point
            page.locator('button.jupyter-button', has_text='Pause').click()
            page.wait_for_function("() => /step \\d+ \\(paused\\)/.test(document.body.innerText)", timeout=60_000)
            held = _paused_step(page)
            # a setting changed during the run is refused on the page, and its slider snaps back
            eps0 = _readout(page, 'eps')
            _slider(page, 'eps').locator('.noUi-handle, .ui-slider-handle').first.focus()
            page.keyboard.press('ArrowRight')
            page.wait_for_function("() => document.body.innerText.includes('refused: eps')", timeout=30_000)
            assert _readout(page, 'eps') == eps0
            page.wait_for_timeout(1000)
            assert _paused_step(page) == held, (held, _paused_step(page))      # paused: no step taken
            page.screenshot(path=str(ARTIFACTS / 'dashboard_paused.png'), full_page=True)
            # resumed, the live curve grows; then Stop ends the run and leaves a valid model
            n0 = page.evaluate(TRACE_POINTS)[0][0]
            page.locator('button.jupyter-button', has_text='Resume').click()
            page.wait_for_function(f"() => ({TRACE_POINTS})()[0][0] > {n0}", timeout=60_000)
            page.locator('button.jupyter-button', has_text='Stop').click()
            page.wait_for_function("() => document.body.innerText.includes('stopped')", timeout=60_000)
            _until(start.is_enabled, 'Start enabled again after the stop')   # a separate widget message: it may lag
            _until(lambda: 'stopping after this step' not in page.evaluate('() => document.body.innerText'),
                   'the "stopping after this step" message cleared when the run ended')
            # run 2, short: epochs / stage set on the page to 2 (allowed now), run to its end
            _slider(page, 'epochs / stage').locator('.noUi-handle, .ui-slider-handle').first.focus()
            page.keyboard.press('Home'); page.keyboard.press('ArrowRight')
            _until(lambda: _readout(page, 'epochs / stage') == '2', 'epochs / stage readout 2')
            assert 'refused' not in page.evaluate('() => document.body.innerText')
            start.click()
            page.wait_for_function("() => document.body.innerText.includes('AL0 done')", timeout=300_000)
            pts = page.evaluate(TRACE_POINTS)
            assert pts[0][0] >= 2 and pts[0][4] >= 2, pts                    # loss and stored fraction per chunk
            assert pts[0][2] >= 2 and pts[0][3] >= 2, pts                    # test clean and robust accuracy per epoch
            assert pts[3] == [0, 0, 1, 1, 1, 1], pts                         # trade-off: two empty axis traces, DA and AL0 in two panels
            # drag the target-CR slider to the left: its readout and the linked weights kept move
            cr0, sp0 = _readout(page, 'target CR'), _readout(page, 'weights kept')
            handle = _slider(page, 'target CR').locator('.noUi-handle, .ui-slider-handle').first
            box = handle.bounding_box()
            page.mouse.move(box['x'] + box['width'] / 2, box['y'] + box['height'] / 2)
            page.mouse.down(); page.mouse.move(box['x'] - 60, box['y'] + box['height'] / 2, steps=8); page.mouse.up()
            _until(lambda: _readout(page, 'weights kept') != sp0, 'the weights kept follow the target CR')
            cr1, sp1 = _readout(page, 'target CR'), _readout(page, 'weights kept')
            assert float(cr0) / 30 < float(cr1) < float(cr0), (cr0, cr1)   # moved, by less than a decade and a half
            assert float(sp1) < float(sp0), (sp0, sp1)
            assert abs(float(sp1) - float(cr1)) <= 1e-3 * float(cr1), (cr1, sp1)   # AL0: target CR = weights kept
            page.screenshot(path=str(ARTIFACTS / 'dashboard.png'), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / 'dashboard_failure.png'), full_page=True)
            raise
        finally:
            browser.close()
