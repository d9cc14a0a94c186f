"""Hostile or broken spec files are refused quickly with a message naming the file and the
limit (issue 20): binary files, alias bombs, deep nesting, huge files; and a flood of problems
is shown as the first 20 plus a count."""

import time

import pytest

from ocf.cli import main
from ocf.errors import SpecError
from ocf.spec import MAX_SPEC_BYTES, MAX_SPEC_DEPTH, MAX_SPEC_NODES, read_yaml


def refused(path, match):
    t0 = time.perf_counter()
    with pytest.raises(SpecError, match=match):
        read_yaml(path)
    assert time.perf_counter() - t0 < 2.0


def test_binary_spec(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"name: x\n\xff\xfe\x00\x01 garbage")
    refused(path, "not a UTF-8 text file")
    assert main(["build", str(path)]) == 2


def test_alias_bomb_is_refused_in_under_two_seconds(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")  # 9^10 values once expanded
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    refused(path, f"more than {MAX_SPEC_NODES:,} values")


def test_deep_nesting(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * (MAX_SPEC_DEPTH + 5) + "]" * (MAX_SPEC_DEPTH + 5) + "\n")
    refused(path, "nested")


def test_huge_file(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: x\n" + "# padding\n" * (MAX_SPEC_BYTES // 10 + 1))
    refused(path, "a spec may hold at most")


def test_a_normal_spec_passes(root):
    assert read_yaml(root / "configs" / "slot_attention" / "demo.yaml")["name"] == "slot_attention-demo"


def test_many_problems_show_the_first_twenty_and_a_count():
    err = SpecError([f"model.k{i}: unknown key" for i in range(1000)])
    lines = str(err).splitlines()
    assert len(lines) == 21 and lines[0] == "model.k0: unknown key" and lines[-1] == "... and 980 more problems"
    assert len(err.problems) == 1000
