"""``ocf repro``: the registry of expected results and the validation of its entries, a
third-party plugin shipping a result, the verdict (relative floors, k of n seeds, baseline,
control), card writing, picking up finished and half-finished seeds, and parallel workers.
Every run is the tiny spec of repro_tiny.py for a few steps."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from pydantic import ValidationError
from repro_tiny import tiny_spec

from ocf import plugins
from ocf.cli import main
from ocf.errors import SpecError, UserError
from ocf.hookspecs import hookimpl
from ocf.plugins import Plugins
from ocf.registry import Registry
from ocf.results import Bound, Control, Result, Run, judge, make, registered
from ocf.run import cards
from ocf.run import repro as job
from ocf.spec import load

REGISTRY = plugins.default().registry


def _result(spec: Path, **fields) -> Result:
    base = dict(name="tiny", spec=str(spec), seeds=[0, 1], metric="fg_ari", shows="a tiny check")
    return Result(**{**base, **fields})


# --------------------------------------------------------------------- entries


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"floor": "untrained plus 0.2"}, "a bound is a number, 'untrained + X' or 'baseline + X'"),
        ({"floor": "baseline + 0.1"}, "a 'baseline + X' bound needs `baseline`"),
        ({"floor": 0.5, "success": "6 of 5"}, "success is 'all' or 'k of n' with 0 < k <= n"),
        ({"success": "2 of 3"}, "counts seeds reaching the floor, but there is no floor"),
        ({"metrics": ["mse"]}, "metric 'fg_ari' is not among metrics ['mse']"),
        ({"seeds": [0, 0]}, "seeds repeat"),
        ({"seeds": []}, "seeds: List should have at least 1 item"),
        ({"spec": "slot_attention/demo.json"}, "a spec is a .yaml file"),
        ({"name": "Tiny Result"}, "name: String should match pattern"),
        ({"overrides": ["train.steps"]}, "overrides are key=value"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_entries_are_validated_with_clear_errors(fields, message):
    base = dict(name="tiny", spec="slot_attention/demo.yaml", metric="fg_ari", shows="x")
    with pytest.raises(SpecError) as info:
        make(**{**base, **fields})
    assert message in str(info.value) and str(info.value).startswith(f"result {fields.get('name', 'tiny')}: ")
    with pytest.raises(ValidationError):
        Result(**{**base, **fields})


def test_bounds_success_rules_and_seeds():
    assert Bound.model_validate("untrained + 0.2") == Bound(value=0.2, over="untrained")
    assert Bound.model_validate("baseline - 0.05") == Bound(value=-0.05, over="baseline")
    assert Bound.model_validate(0.5) == Bound(value=0.5) and Bound.model_validate("0.5").over == "absolute"
    r = make(
        name="x",
        spec="a.yaml",
        metric="m",
        shows="s",
        floor=["untrained + 0.2", 0.5],
        success="4 of 5",
        seeds=[0, 1, 2, 3, 4],
    )
    assert [b.text() for b in r.floor] == ["untrained + 0.2", "0.5"]
    assert [r.required(n) for n in (5, 3, 10, 1)] == [4, 3, 8, 1]
    assert r.seed_list() == [0, 1, 2, 3, 4] and r.seed_list(2) == [0, 1] and r.seed_list(7) == [0, 1, 2, 3, 4, 5, 6]
    assert r.target_text() == "m: at least 4 of 5 seeds >= untrained + 0.2 and 0.5"
    with pytest.raises(UserError, match="no such file"):
        Run(spec="slot_attention/nope.yaml").spec_path()
    with pytest.raises(UserError, match="package 'no_such_package' is not installed"):
        Run(spec="a.yaml", package="no_such_package").spec_path()
    assert Run(spec="configs/demo.yaml", package="ocf_slot_attention").chain()[0].package == "ocf_slot_attention"


def test_judge_relative_floor_k_of_n_baseline_and_control():
    r = make(name="x", spec="a.yaml", metric="m", shows="s", floor="untrained + 0.2", mean=0.5)
    seeds = {
        0: {"value": 0.7, "untrained": 0.45},
        1: {"value": 0.6, "untrained": 0.45},
        2: {"value": 0.45, "untrained": 0.1},
    }
    v = judge(r, seeds)
    assert [v["seeds"][s]["floor"] for s in (0, 1, 2)] == pytest.approx([0.65, 0.65, 0.3])
    assert [v["seeds"][s]["reached"] for s in (0, 1, 2)] == [True, False, True]  # 0.6 < 0.45 + 0.2
    assert v["success"] == {"reached": 2, "of": 3, "required": 3, "rate": pytest.approx(2 / 3)}
    assert v["mean"] == pytest.approx(statistics.mean([0.7, 0.6, 0.45]))
    assert v["se"] == pytest.approx(statistics.stdev([0.7, 0.6, 0.45]) / math.sqrt(3))
    assert v["mean_target"]["reached"] and v["passed"] is False
    # SRI's rule: baseline + 0.1 on 2 of 3 seeds (4 of 5 scaled), baseline compared seed by seed
    sri = make(
        name="x",
        spec="a.yaml",
        metric="m",
        shows="s",
        floor="baseline + 0.1",
        success="4 of 5",
        baseline="b",
        control=Control(run=Run(spec="a.yaml"), ceiling=0.05),
    )
    values = {0: {"value": 0.5}, 1: {"value": 0.3}, 2: {"value": 0.9}}
    v = judge(sri, values, baseline={0: 0.35, 1: 0.25, 2: 0.2}, control={0: 0.01, 1: 0.03, 2: 0.08})
    assert [v["seeds"][s]["reached"] for s in (0, 1, 2)] == [True, False, True]
    assert v["success"]["required"] == 3 and v["passed"] is False  # 2 of 3 < ceil(4/5 * 3)
    assert v["control"]["mean"] == pytest.approx(0.04) and v["control"]["below"]
    v = judge(sri, values, baseline={0: 0.35, 1: 0.1, 2: 0.2}, control={0: 0.2, 1: 0.2, 2: 0.2})
    assert v["success"]["reached"] == 3 and not v["control"]["below"] and v["passed"] is False
    lower = make(name="x", spec="a.yaml", metric="mse", shows="s", higher_is_better=False, floor="untrained - 0.01")
    v = judge(lower, {0: {"value": 0.03, "untrained": 0.05}, 1: {"value": 0.045, "untrained": 0.05}})
    assert [v["seeds"][s]["reached"] for s in (0, 1)] == [True, False]
    none = judge(make(name="x", spec="a.yaml", metric="m", shows="s"), {0: {"value": 0.2}})
    assert none["passed"] is None and none["se"] is None and "success" not in none


# --------------------------------------------------------------------- registry


TRAINING_PLUGINS = {"slot_attention", "genesis", "setcon", "sri", "simone", "sqair", "rotating"}


def test_every_built_in_plugin_registers_results_that_resolve():
    entries = registered(REGISTRY)
    assert {
        "demo",
        "slot_attention_shapes",
        "genesis_shapes",
        "setcon_probe",
        "sri",
        "simone",
        "air_digits",
        "sqair_digits",
        "rotating_4shapes",
    } <= set(entries)
    assert TRAINING_PLUGINS <= {plugin for _, plugin in entries.values()}
    demo = entries["demo"][0]
    assert demo.seeds == [0, 1, 2, 3, 4] and demo.mean.value == 0.5 and demo.floor[0].over == "untrained"
    sri = entries["sri"][0]
    assert sri.success == "4 of 5" and sri.baseline == "sri_genesis_baseline"
    assert "0.32 ± 0.02 over 4 seeds" in entries["genesis_shapes"][0].evidence
    for name, (result, _) in entries.items():
        if result.baseline:
            assert result.baseline in entries, name
        runs = result.chain() + (result.control.run.chain() if result.control else [])
        for run in runs:  # every spec loads with its overrides, and knows the judged metric
            spec = load(run.spec_path(), REGISTRY, run.overrides).spec
            assert spec.train.steps > 0 and (run.steps is None or run.steps <= spec.train.steps)
        assert result.metric in spec.eval.metrics, name


class ThirdParty:
    """A plugin of someone else's: one result on the tiny spec, registered through the hook."""

    def __init__(self, spec: Path, **fields) -> None:
        self.result = _result(spec, **fields)

    @hookimpl
    def ocf_register_results(self, registry):
        registry.add("result", self.result.name, self.result)


def test_a_third_party_plugin_registers_a_result(tmp_path, capsys):
    ps = Plugins()
    info = ps.add_module(ThirdParty(tiny_spec(tmp_path)), "thirdparty")
    assert info.status == "ok" and ("result", "tiny") in info.entries
    result, plugin = registered(ps.registry)["tiny"]
    assert plugin == "thirdparty" and result.spec_path() == tmp_path / "tiny.yaml"

    class Broken:
        @hookimpl
        def ocf_register_results(self, registry):
            registry.add("result", "bad", make(name="bad", spec="a.yaml", metric="m", shows="s", success="9 of 5"))

    failed = ps.add_module(Broken(), "broken")
    assert failed.status == "failed" and "success is 'all' or 'k of n'" in failed.error
    assert "bad" not in registered(ps.registry)

    class NotAResult:
        @hookimpl
        def ocf_register_results(self, registry):
            registry.add("result", "loose", {"spec": "a.yaml"})

    ps.add_module(NotAResult(), "loose")
    with pytest.raises(UserError, match="result 'loose' of plugin 'loose' is a dict, not an ocf.results.Result"):
        registered(ps.registry)


# --------------------------------------------------------------------- running and cards


def _files_mtimes(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.suffix in {".pt", ".json"}}


def test_card_from_a_chain_with_baseline_and_control_and_picking_up_seeds(tmp_path, monkeypatch):
    """In-process (--jobs 0): a result started from another run, compared with a baseline and
    a control; the card's numbers are the records'; a rerun trains nothing; a half-finished
    seed resumes from its checkpoint."""
    spec = tiny_spec(tmp_path)
    base = Result(name="tiny_base", spec=str(spec), seeds=[0, 1], metric="fg_ari", shows="the baseline")
    result = _result(
        spec,
        init_from=Run(spec=str(spec), steps=2),
        floor="untrained - 1",
        mean="baseline - 1",
        baseline="tiny_base",
        control=Control(
            run=Run(spec=str(spec), overrides=["model.grouper.num_slots=2"]), ceiling=1.0, shows="two slots"
        ),
    )
    registry = Registry()  # the built-in registry with these two results added
    for e in REGISTRY.entries():
        registry.add(e.kind, e.name, e.obj, plugin=e.plugin)
    registry.add("result", "tiny", result, plugin="thirdparty")
    registry.add("result", "tiny_base", base, plugin="thirdparty")
    runs = tmp_path / "runs"
    records = job.reproduce(result, registry, jobs=0, threads=1, runs=runs, progress=False)
    assert set(records) == {"result", "baseline", "control"}
    assert sorted(records["result"]) == [0, 1] and records["result"][0]["steps"] == [2, 3]
    assert (runs / "tiny" / "seed0.init" / "checkpoints" / "last.pt").exists()
    task = json.loads((runs / "tiny" / "seed0" / "task.json").read_text())
    assert task["stages"][1]["out"] == str((runs / "tiny" / "seed0").resolve())
    assert any(
        o.startswith("train.init_from=") and o.endswith("seed0.init")
        for o in job.read_task(runs / "tiny" / "seed0" / "task.json").stage_overrides(1)
    )

    card = cards.build(result, "thirdparty", records, command="ocf repro tiny --jobs 0", jobs=0)
    json_path, md_path = cards.write(card, tmp_path / "cards")
    saved = json.loads(json_path.read_text())
    values = [records["result"][s]["metrics"]["fg_ari"] for s in (0, 1)]
    v = saved["verdict"]
    assert v["mean"] == pytest.approx(statistics.mean(values))
    assert v["se"] == pytest.approx(statistics.stdev(values) / math.sqrt(2))
    untrained = records["result"][0]["untrained"]["fg_ari"]
    assert v["seeds"]["0"]["floor"] == pytest.approx(untrained - 1) and v["seeds"]["0"]["reached"] is True
    assert v["seeds"]["1"]["baseline"] == records["baseline"][1]["metrics"]["fg_ari"]
    assert v["success"] == {"reached": 2, "of": 2, "required": 2, "rate": 1.0} and v["passed"] is True
    assert v["control"]["ceiling"] == 1.0 and set(v["control"]["seeds"]) == {"0", "1"}
    assert set(saved["metrics"]) == {"fg_ari", "ari", "mbo", "mse"} and saved["steps"] == [2, 3]
    assert saved["conventions"]["fg_ari"].startswith("FG-ARI, background (id 0)")
    assert saved["machine"]["threads_per_seed"] == 1 and saved["machine"]["cores"] >= 1
    assert saved["versions"]["torch"] and len(saved["git"]["commit"] or "x" * 40) == 40
    assert (
        saved["per_seed"]["1"]["commands"][1].startswith("ocf train ")
        and "--steps 3" in saved["per_seed"]["1"]["commands"][1]
    )
    text = md_path.read_text()
    for piece in (
        "# tiny",
        "a tiny check",
        "**passed**",
        f"fg_ari {v['mean']:.3f} ± {v['se']:.3f} (n = 2)",
        "2 of 2 seeds reach the floor (2 required)",
        "| seed | fg_ari | untrained | baseline (tiny_base) |",
        "Control (two slots)",
        "## Metric conventions",
        "- `fg_ari`: FG-ARI",
        "git commit:",
        "threads per seed",
        "```bash\nocf train ",
    ):
        assert piece in text, piece

    # a rerun trains and scores nothing: every checkpoint and record stays as it was
    before = _files_mtimes(runs)
    monkeypatch.setattr(job, "run_task", lambda *a, **k: pytest.fail("a finished seed was rerun"))
    again = job.reproduce(result, registry, jobs=0, threads=1, runs=runs, progress=False)
    assert again == records and _files_mtimes(runs) == before
    monkeypatch.undo()
    # one more seed trains only that seed (of the result, its baseline and its control)
    ran, run_task = [], job.run_task
    monkeypatch.setattr(job, "run_task", lambda task, reg: ran.append((task.label, task.seed)) or run_task(task, reg))
    more = job.reproduce(result, registry, seeds=3, jobs=0, threads=1, runs=runs, progress=False)
    assert sorted(ran) == [("tiny", 2), ("tiny.control", 2), ("tiny_base", 2)]
    assert more["result"][0] == records["result"][0] and _files_mtimes(runs).items() >= before.items()

    # another budget in the same run dir is refused, not mixed in
    with pytest.raises(UserError, match="holds runs of another configuration"):
        job.check_reusable(job.chain_tasks("tiny", Run(spec=str(spec), steps=5), 0, None, runs, registry, 1))


def test_a_half_finished_seed_resumes_from_its_checkpoint(tmp_path):
    """A worker killed after 2 of 4 steps left last.pt at step 2: the next run resumes there
    (the log goes on from step 3) and the seed ends as if never stopped."""
    from ocf.run import train

    spec = tiny_spec(tmp_path, steps=4)
    task = job.chain_tasks("tiny", _result(spec), 0, None, tmp_path / "runs", REGISTRY, 1)
    train.run(load(spec, REGISTRY, task.stage_overrides(0)), out=str(task.out), steps=2, progress=False)
    assert not job.finished(task) and job.done_steps(task) == 2
    record = job.run_task(task, REGISTRY)
    lines = [json.loads(x) for x in (task.out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3, 4]
    assert record["resumed"] is True and job.finished(task) and job.done_steps(task) == 4

    whole = job.chain_tasks("whole", _result(spec), 0, None, tmp_path / "runs", REGISTRY, 1)
    assert job.run_task(whole, REGISTRY)["metrics"] == pytest.approx(record["metrics"], abs=1e-6)


def test_the_progress_bar_counts_resumed_steps_as_done_not_as_speed(tmp_path, monkeypatch):
    """A rerun after 2 of 4 steps starts its bar at 2: the steps already trained do not show
    up as thousands of steps per second in the first second."""
    from ocf.run import train

    spec = tiny_spec(tmp_path, steps=4)
    task = job.chain_tasks("tiny", _result(spec), 0, None, tmp_path / "runs", REGISTRY, 1)
    train.run(load(spec, REGISTRY, task.stage_overrides(0)), out=str(task.out), steps=2, progress=False)
    bars = []
    import tqdm.auto

    real = tqdm.auto.tqdm
    monkeypatch.setattr(tqdm.auto, "tqdm", lambda *a, **k: bars.append(k) or real(*a, **k))
    job.execute([task], jobs=0, progress=False, registry=REGISTRY)
    assert bars[0]["initial"] == 2 and bars[0]["total"] == 4 and job.done_steps(task) == 4


def test_ocf_repro_runs_seeds_in_parallel_workers_and_picks_up_finished_ones(tmp_path, monkeypatch, capsys):
    """The command line end to end, --jobs 2: two worker processes; a rerun launches none.
    Also --list shows the third-party result and its card, and --report the card's row."""
    spec = tiny_spec(tmp_path)
    ps = plugins.default()
    ps.add_module(ThirdParty(spec, floor="untrained - 1"), "thirdparty")
    launched = []
    launch = job._launch
    monkeypatch.setattr(job, "_launch", lambda task: launched.append(task.seed) or launch(task))
    try:
        out, runs = tmp_path / "cards", tmp_path / "runs"
        args = ["repro", "tiny", "--out", str(out), "--runs", str(runs), "--no-progress", "--jobs", "2"]
        assert main(args) == 0
        assert sorted(launched) == [0, 1]
        card = json.loads((out / "tiny.json").read_text())
        assert card["machine"]["parallel_jobs"] == 2 and card["seeds"] == [0, 1]
        assert card["command"] == "ocf repro tiny --seeds 2 --jobs 2" and card["verdict"]["passed"] is True
        first = json.loads((runs / "tiny" / "seed0" / "repro.json").read_text())
        assert first["threads"] == max(1, job.cores() // 2)
        assert main(args) == 0
        assert sorted(launched) == [0, 1]  # nothing relaunched
        assert json.loads((runs / "tiny" / "seed0" / "repro.json").read_text()) == first
        capsys.readouterr()
        assert main(["repro", "--list", "--out", str(out)]) == 0
        listed = capsys.readouterr().out
        assert "tiny" in listed and "thirdparty" in listed and "passed" in listed
        doc = tmp_path / "docs" / "benchmarks.md"
        doc.parent.mkdir()
        doc.write_text("# Benchmarks\n\nOlder text.\n")
        for _ in range(2):  # idempotent: the section is replaced, not repeated
            assert main(["repro", "--report", "--out", str(out), "--doc", str(doc)]) == 0
        text = doc.read_text()
        assert text.count(cards.BEGIN) == 1 and "Older text." in text
        assert "| `tiny` | fg_ari: every seed >= untrained - 1 |" in text and "[card](../cards/tiny.md)" in text
    finally:
        ps.unregister("thirdparty")
