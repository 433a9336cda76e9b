"""What the tutorials (nbs/tutorials/) have in common as a course, in one place for the tools and the tests:

- the **install cell**: it installs the package only where it cannot be imported (Colab, a fresh environment),
  pinned to the release the outputs were made with (the git tag `v<version>` of settings.ini's version); where the
  package is importable it does nothing, so Run All never runs pip over a student's own copy. `tools/run_nb.py`
  re-pins it to the current version whenever it executes a tutorial (the outputs are then that version's).
- the **solution marker**: a solution is a code cell with the directive `#| code-summary: "Solution"` (with
  `#| code-fold: true`, which folds it on the docs site). An exercise is a Markdown cell that starts with
  `**Exercise N.**`, followed by a code cell to fill in (`# your code here`) and its solution.
  `tools/student_copies.py` removes the solutions.
"""
import re
from pathlib import Path

from nbdev.config import get_config

INSTALL_MARK = '# Installs the package where it is missing'
_SOLUTION = re.compile(r'^#\|\s*code-summary:\s*["\']?Solution["\']?\s*$', re.M | re.I)
_EXERCISE = re.compile(r'^\*\*Exercise \d+\.\*\*', re.M)


def version() -> str: return get_config().version


def install_url(ver: str | None = None) -> str:
    "pip's requirement for the release `ver` (default: settings.ini's version): the git repository at tag v<ver>."
    return f"robustcompress_nb @ git+{get_config().git_url}@v{ver or version()}"


def install_source(ver: str | None = None) -> str:
    "The install cell of a tutorial, pinned to the release `ver`."
    return (f"{INSTALL_MARK} (Colab, a fresh environment), at the release the outputs below were\n"
            f"# made with; where robustcompress_nb is already importable (a clone, your own install) it does nothing.\n"
            f"try: import robustcompress_nb\n"
            f"except ImportError:\n"
            f"    %pip install -q \"{install_url(ver)}\"")


def is_install(cell) -> bool: return cell.cell_type == 'code' and cell.source.startswith(INSTALL_MARK)


def pin_install(nb, ver: str | None = None) -> int:
    "Re-pin the install cells of notebook `nb` (a dict-like notebook) to release `ver`; returns how many there are."
    cells = [c for c in nb.cells if is_install(c)]
    for c in cells: c.source = install_source(ver)
    return len(cells)


def is_solution(cell) -> bool: return cell.cell_type == 'code' and bool(_SOLUTION.search(cell.source))


def is_exercise(cell) -> bool: return cell.cell_type == 'markdown' and bool(_EXERCISE.search(cell.source))


def tutorials() -> list[Path]: return sorted((get_config().nbs_path / 'tutorials').glob('[!_.]*.ipynb'))
