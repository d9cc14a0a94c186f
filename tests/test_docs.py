"""Docs stay true: every hook is documented; README shows the two commands."""

from pathlib import Path

from ocf import hookspecs

ROOT = Path(__file__).resolve().parents[1]


def test_every_hook_is_documented():
    doc = (ROOT / "docs" / "plugins" / "hooks.md").read_text()
    hooks = [n for n in dir(hookspecs) if n.startswith("ocf_")]
    assert hooks
    for name in hooks:
        assert f"## {name}(" in doc, f"hook {name} is not documented in docs/plugins/hooks.md"


def test_readme_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
