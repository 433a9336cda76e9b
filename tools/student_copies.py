"""Write the student copies of the tutorials: the same notebooks without the solutions, with every output cleared,
in a folder of their own (nbs/tutorials/X.ipynb -> OUT/tutorials/X.ipynb, the images they show -> OUT/images/).

A solution is a code cell marked `#| code-summary: "Solution"` (tools/course.py); the exercises and the cells to
fill in stay. A note at the top of each copy says that the solutions are in the full lesson.

    python tools/student_copies.py --out student    # then hand out student/
"""
import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from course import is_solution, is_exercise, tutorials  # noqa: E402

NOTE = ("*Student copy: the solutions of the exercises are removed. The full lesson, with solutions, is "
        "`nbs/tutorials/{name}` in the repository and the tutorial's page on the documentation site.*")


def student_copy(path: Path):
    "The student version of the tutorial at `path` (a new notebook): solutions removed, outputs cleared, a note added."
    nb = nbformat.read(path, as_version=4)
    if not any(is_exercise(c) for c in nb.cells) == any(is_solution(c) for c in nb.cells):
        raise ValueError(f"{path}: exercises and solution cells must come together (solutions are marked "
                         f"'#| code-summary: \"Solution\"')")
    cells = []
    for c in nb.cells:
        if is_solution(c): continue
        if c.cell_type == 'code':
            c.outputs, c.execution_count = [], None
            c.metadata.pop('execution', None)
        cells.append(c)
    first = next((i for i, c in enumerate(cells) if c.cell_type == 'markdown'), -1)
    cells.insert(first + 1, nbformat.v4.new_markdown_cell(NOTE.format(name=path.name)))
    nb.cells = cells
    nb.metadata.pop('widgets', None)
    return nb


_IMG = re.compile(r'!\[[^\]]*\]\(([^)\s]+)')


def write_copies(out: Path) -> list[Path]:
    "Write every tutorial's student copy under `out`; returns the notebooks written."
    written = []
    for path in tutorials():
        nb = student_copy(path)
        dst = out / 'tutorials' / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, dst)
        written.append(dst)
        for c in nb.cells:   # the images the lesson shows, at the same relative place
            for src in _IMG.findall(c.source) if c.cell_type == 'markdown' else []:
                if re.match(r'^[a-z]+:', src): continue
                f = (path.parent / src).resolve()
                t = (dst.parent / src).resolve()
                if f.is_file() and t.is_relative_to(out.resolve()):
                    t.parent.mkdir(parents=True, exist_ok=True); shutil.copy(f, t)
    return written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='folder to write the copies to (created)')
    a = p.parse_args(argv)
    for w in write_copies(Path(a.out)): print(w)
    return 0


if __name__ == '__main__':
    sys.exit(main())
