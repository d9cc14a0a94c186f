"""The demo meets its bar (slow: several minutes; run with `pytest -m slow`)."""

import re
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_shows_real_learning(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ocf.demo", "--out", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    m = re.search(r"^FG-ARI ([\d.]+) \(untrained ([-\d.]+)\)", out.stdout, re.M)
    assert m, out.stdout[-2000:]
    trained, untrained = float(m.group(1)), float(m.group(2))
    assert trained >= 0.5 and trained >= untrained + 0.2
