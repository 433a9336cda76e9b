"""Every benchmark script still runs against the current package: `python benchmarks/<script>.py --help` imports
everything the script imports (a renamed or removed name fails here, not in a user's multi-hour run) and parses its
command line. The scripts' measurements themselves are not tests: they live in benchmarks/results/."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / 'benchmarks'
SCRIPTS = sorted(p.name for p in BENCH.glob('*.py') if not p.name.startswith('_'))


def test_scripts_found():
    assert {'reproduce_mnist.py', 'reproduce_cifar10.py', 'sweep_scaling.py'} <= set(SCRIPTS)


@pytest.mark.parametrize('script', SCRIPTS)
def test_script_help(script):
    r = subprocess.run([sys.executable, str(BENCH / script), '--help'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'usage:' in r.stdout
