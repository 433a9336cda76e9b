"""The tutorials as a course (tools/course.py, tools/student_copies.py):

- every tutorial has one install cell, pinned to settings.ini's version; run in IPython it never calls pip where the
  package is importable, and calls it once, with the pinned release, where it is not;
- the student copies: written by the real command, valid notebooks, no outputs, no solution left (no solution
  cell, no distinctive line of one), every exercise and every cell to fill in kept, the images they show copied;
- every tutorial ends with recap questions and a further-reading list.
"""
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import course  # noqa: E402

TUTORIALS = course.tutorials()


def _nb(path): return nbformat.read(path, as_version=4)


def test_there_are_tutorials_with_exercises():
    assert len(TUTORIALS) >= 5, TUTORIALS
    for p in TUTORIALS:
        nb = _nb(p)
        ex, sol = [c for c in nb.cells if course.is_exercise(c)], [c for c in nb.cells if course.is_solution(c)]
        assert ex and len(sol) >= len(ex), (p.name, len(ex), len(sol))


@pytest.mark.parametrize('path', TUTORIALS, ids=lambda p: p.stem)
def test_install_cell_pinned(path):
    cells = [c for c in _nb(path).cells if course.is_install(c)]
    assert len(cells) == 1, f"{path.name}: {len(cells)} install cells"
    src = cells[0].source
    assert src == course.install_source(), f"{path.name}: install cell not pinned to v{course.version()} (run tools/run_nb.py)"
    assert f"@v{course.version()}\"" in src and '#| eval' not in src
    assert not any('pip install' in c.source for c in _nb(path).cells if c.cell_type == 'code' and not course.is_install(c))


def _run_in_ipython(src) -> list:
    "Run cell `src` as IPython does (its input transformers turn `%pip` into a magic call); returns the pip calls."
    from IPython.core.inputtransformer2 import TransformerManager
    calls = []
    class Shell:
        def run_line_magic(self, name, line, _stack_depth=1): calls.append((name, line))
    exec(TransformerManager().transform_cell(src), {'get_ipython': Shell})
    return calls


def test_install_cell_runs_pip_only_when_missing(monkeypatch):
    src = course.install_source()
    assert _run_in_ipython(src) == []                              # the package is importable here: nothing happens
    monkeypatch.setitem(sys.modules, 'robustcompress_nb', None)   # now `import robustcompress_nb` raises ImportError
    assert _run_in_ipython(src) == [('pip', f'install -q "robustcompress_nb @ git+https://github.com/'
                                            f'robustcompress-nb/robustcompress_nb@v{course.version()}"')]


def test_pin_install_repins():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(course.install_source('0.0.9')),
                                         nbformat.v4.new_code_cell('x = 1')])
    assert '@v0.0.9"' in nb.cells[0].source
    assert course.pin_install(nb) == 1
    assert nb.cells[0].source == course.install_source() and nb.cells[1].source == 'x = 1'


@pytest.fixture(scope='module')
def copies(tmp_path_factory):
    out = tmp_path_factory.mktemp('student')
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'student_copies.py'), '--out', str(out)], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize('path', TUTORIALS, ids=lambda p: p.stem)
def test_student_copy(copies, path):
    dst = copies / 'tutorials' / path.name
    assert dst.exists()
    copy, orig = _nb(dst), _nb(path)
    nbformat.validate(copy)
    text = '\n'.join(c.source for c in copy.cells)
    assert not any(course.is_solution(c) for c in copy.cells)
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == 'code')
    others = '\n'.join(c.source for c in orig.cells if not course.is_solution(c))
    solutions = [c for c in orig.cells if course.is_solution(c)]
    assert solutions
    for s in solutions:   # no line of a solution that is its own (not also elsewhere in the lesson) survives
        own = [l.strip() for l in s.source.splitlines() if len(l.strip()) >= 20 and not l.lstrip().startswith('#|')
               and l.strip() not in others]
        assert own, s.source[:200]          # each solution has text of its own, so this check can fail
        assert not [l for l in own if l in text], path.name
    kept = lambda nb, f: [c.source for c in nb.cells if f(c)]
    assert kept(copy, course.is_exercise) == kept(orig, course.is_exercise)
    stubs = lambda nb: [c.source for c in nb.cells if c.cell_type == 'code' and 'your code here' in c.source]
    assert stubs(copy) == stubs(orig) and len(stubs(orig)) == len(kept(orig, course.is_exercise))
    assert len(copy.cells) == len(orig.cells) - len(solutions) + 1     # + the note saying solutions were removed
    assert 'Student copy' in text


def test_student_copy_images(copies):
    assert (copies / 'images' / 'dashboard.png').is_file()      # tutorial 05 shows ../images/dashboard.png


@pytest.mark.parametrize('path', TUTORIALS, ids=lambda p: p.stem)
def test_recap_and_further_reading(path):
    md = [c.source for c in _nb(path).cells if c.cell_type == 'markdown']
    assert md[-2].startswith('## Recap') and md[-1].startswith('## Further reading'), path.name
    questions = re.split(r'^\d+\. ', md[-2], flags=re.M)[1:]
    assert all('?' in q for q in questions), questions
    assert len(questions) >= 4, questions
    refs = [l for l in md[-1].splitlines() if l.startswith('- ')]
    assert len(refs) >= 4 and all('"' in r and any(str(y) in r for y in range(1930, 2031)) for r in refs), refs
