"""benchmarks/vs_original.py with a fake original: alternation, statistics, JSON, the docs table,
and what it says when the originals' folder or a checkout is missing."""

import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from benchmarks import vs_original as vs  # noqa: E402

ADAPTER = """
import torch
from benchmarks.originals import load

PATCHES = ("none: a fake original for the tests",)


def build(root, batch, width=4):
    net = load(root, "fake_net").Net(batch.frames.shape[2], width)
    x = batch.frames[:, 0]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)

    def step():
        loss = (net(x) - x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, net
"""

NET = """
import torch


class Net(torch.nn.Module):
    def __init__(self, channels, width):
        super().__init__()
        self.a = torch.nn.Conv2d(channels, width, 3, padding=1)
        self.b = torch.nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))
"""


def tiny_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "tiny.yaml"
    data = {
        "dataset": "shapes",
        "path": str(tmp_path / "s.h5"),
        "resolution": [16, 16],
        "generate": {"n": 16, "seed": 0, "options": {"resolution": 16}},
    }
    model = {
        "encoder": {"type": "cnn", "channels": [8, 8]},
        "grouper": {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 8, "mlp_hidden": 16},
        "decoder": {"type": "spatial_broadcast", "channels": [8, 8]},
        "objectives": [{"type": "mse"}],
    }
    spec.write_text(yaml.safe_dump({"data": data, "model": model, "train": {"batch_size": 4}}))
    return spec


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """DIR/fake (the 'original', with its commit file) and the adapter module on PYTHONPATH."""
    originals, adapters = tmp_path / "originals", tmp_path / "adapters"
    (originals / "fake").mkdir(parents=True)
    (originals / "fake" / "fake_net.py").write_text(NET)
    (originals / "fake" / vs.COMMIT_FILE).write_text("abc123\n")
    adapters.mkdir()
    (adapters / "fake_adapter.py").write_text(ADAPTER)
    monkeypatch.syspath_prepend(str(adapters))
    monkeypatch.setenv("PYTHONPATH", str(adapters))
    case = vs.Case(
        original="fake",
        adapter="fake_adapter",
        spec=str(tiny_spec(tmp_path)),
        overrides=[],
        setting="tiny",
        differs="nothing",
        repo="someone/fake",
        commit="abc123",
        options={"width": 5},
        small_data=False,
    )
    return originals, case


def test_sides_alternate_and_ratios_are_per_round(fake):
    originals, case = fake
    calls = []
    seconds = {"ocf": iter([1.0, 2.0, 1.0]), "original": iter([3.0, 2.0, 4.0])}

    def runner(side, c, d, threads, steps, warmup):
        calls.append(side)
        return {
            "sec_per_step": next(seconds[side]),
            "params": 7 if side == "ocf" else 9,
            "peak_mb": 100.0 + len(calls),
            "threads": threads,
        }

    rec = vs.compare("fake", case, originals, rounds=3, threads=1, steps=1, warmup=0, runner=runner)
    assert calls == ["ocf", "original", "original", "ocf", "ocf", "original"]
    assert rec["status"] == "measured"
    assert rec["ocf"]["sec_per_step"] == 1.0 and rec["original"]["sec_per_step"] == 3.0
    assert rec["ratio"] == {"median": 3.0, "min": 1.0, "max": 4.0}  # 3/1, 2/2, 4/1
    assert rec["ocf"]["params"] == 7 and rec["original"]["params"] == 9
    assert rec["original"]["peak_mb"] == 106.0


def test_end_to_end_fresh_processes_json_and_docs(fake, tmp_path):
    originals, case = fake
    out = tmp_path / "vs.json"
    argv = [
        "--originals",
        str(originals),
        "--rounds",
        "1",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    result = vs.main(argv, cases={"fake": case})
    stored = json.loads(out.read_text())
    assert stored == json.loads(json.dumps(result))
    rec = stored["cases"]["fake"]
    assert rec["status"] == "measured", rec.get("reason")
    assert rec["original"]["params"] == (3 * 5 * 9 + 5) + (5 * 3 * 9 + 3)  # the fake net at width 5
    assert rec["ocf"]["params"] > 0 and rec["ocf"]["sec_per_step"] > 0 and rec["original"]["peak_mb"] > 10
    table = report.original_table(stored, {})
    assert "| fake | tiny |" in table and f"{rec['original']['params']:,}" in table
    assert "someone/fake `abc123`" in table and stored["ocf_commit"][:12] in table


def test_wrong_commit_and_missing_checkout_are_reported_per_case(fake, tmp_path):
    originals, case = fake
    (originals / "fake" / vs.COMMIT_FILE).write_text("def456\n")
    rec = vs.compare("fake", case, originals, rounds=3, threads=1, steps=1, warmup=0, runner=None)
    assert rec["status"] == "not run" and "is at def456, expected abc123" in rec["reason"]
    rec = vs.compare("fake", case, tmp_path / "elsewhere", rounds=3, threads=1, steps=1, warmup=0, runner=None)
    assert rec["status"] == "not run"
    assert "missing" in rec["reason"] and "git clone https://github.com/someone/fake" in rec["reason"]
    table = report.original_table(
        {
            "cases": {"fake": rec},
            "machine": {"cpu": "c", "cores": 2, "threads": 1, "torch": "t"},
            "date": "d",
            "ocf_commit": "x",
            "rounds": 3,
            "steps": 1,
            "warmup": 0,
            "command": "c",
        },
        {},
    )
    assert "not run: " in table and "| – |" in table


def test_failing_original_is_not_run_with_its_last_words(fake):
    originals, case = fake

    def runner(side, *a):
        if side == "original":
            raise RuntimeError("original side failed (exit 1): ImportError: no module named x")
        return {"sec_per_step": 1.0, "params": 1, "peak_mb": 1.0, "threads": 1}

    rec = vs.compare("fake", case, originals, rounds=3, threads=1, steps=1, warmup=0, runner=runner)
    assert rec == {
        **rec,
        "status": "not run",
        "reason": "original side failed (exit 1): ImportError: no module named x",
    }


def test_missing_originals_folder_says_how_to_prepare_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        vs.main(["--originals", str(tmp_path / "nope")])
    msg = str(exc.value)
    assert "is not a folder" in msg
    for name, (repo, commit) in vs.ORIGINALS.items():
        assert f"git clone https://github.com/{repo} {tmp_path / 'nope' / name}" in msg and commit in msg


def test_table_without_results_says_not_measured_and_gives_the_command():
    text = report.original_table(None, vs.ORIGINALS)
    assert "Not measured yet" in text and report.ORIGINAL_COMMAND in text
    assert "loeweX/RotatingFeatures" in text


def test_every_case_names_a_pinned_original_and_an_adapter_with_patches():
    import importlib

    from benchmarks.originals.cases import CASES

    assert {
        "rotating",
        "simone_3x128",
        "simone_5x512",
        "sri_genesis",
        "genesis",
        "setcon",
        "air",
        "slot_attention",
    } <= set(CASES)
    for case in CASES.values():
        assert case.original in vs.ORIGINALS and len(case.commit) == 40
        adapter = importlib.import_module(case.adapter)
        assert adapter.PATCHES and callable(adapter.build)
        assert (ROOT / case.spec).exists()
