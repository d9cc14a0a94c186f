"""The shipped specs for the field's standard datasets (issue 21, part 3): each reads a file
written by `ocf data convert` from a tiny source file in the dataset's exact format
(tests/convert_fixtures.py), builds at the paper's size, trains a few steps on the converted
file (sizes reduced where the paper's would be slow on a CPU) and is scored on its test split."""

import json
from pathlib import Path

import numpy as np
import pytest
from convert_fixtures import clevr_record, deepmind_image_record, movi_record, write_movi, write_tfrecord

from ocf import assembly, plugins
from ocf.data import read_info
from ocf.data.convert import convert
from ocf.run import train
from ocf.run.checkpoints import load_run
from ocf.run.evaluate import evaluate_model
from ocf.spec import load

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = plugins.default().registry
FAST = [
    "train.steps=2",
    "train.batch_size=2",
    "train.log_every=1",
    "train.image_every=0",
    "train.checkpoint_every=2",
    "train.eval_every=0",
    "eval.batch_size=2",
]
DSPRITE_FACTORS = {**{k: () for k in ("x", "y", "shape", "visibility", "orientation", "scale")}, "color": (3,)}
TETROMINO_FACTORS = {"x": (), "y": (), "shape": (), "color": (3,), "visibility": ()}


def _deepmind(name, file_name, make):
    def write(tmp: Path, out: Path, splits: dict, resolution=None, crop=None) -> Path:
        rng = np.random.default_rng(0)
        src = write_tfrecord(tmp / file_name, [make(rng, i)[0] for i in range(6)], "gzip")
        convert(name, [src], out, splits=splits, resolution=resolution, crop=crop)
        return out

    return write


def _movi(tmp: Path, out: Path, resolution=None) -> Path:
    rng = np.random.default_rng(0)
    records = [movi_record(rng, t=6, h=16, w=16, o=2)[0] for _ in range(8)]
    root = write_movi(
        tmp / "movi_c" / "128x128" / "1.0.0",
        "movi_c",
        {"train": [records[:4]], "validation": [records[4:6]], "test": [records[6:]]},
    )
    convert("movi", [root], out, resolution=resolution)
    return out


PAPER_SPLITS = {"paper_train": "0:4", "paper_test": "4:6"}
THIRDS = {"train": "0:4", "val": "4:5", "test": "5:6"}
clevr = _deepmind("clevr_with_masks", "clevr_with_masks_train.tfrecords", lambda rng, i: clevr_record(rng, 1 + i % 5))
tetrominoes = _deepmind(
    "tetrominoes",
    "tetrominoes_train.tfrecords",
    lambda rng, i: deepmind_image_record(rng, 35, 35, 4, 3, factors=TETROMINO_FACTORS),
)
dsprites = _deepmind(
    "multi_dsprites",
    "multi_dsprites_colored_on_grayscale.tfrecords",
    lambda rng, i: deepmind_image_record(rng, 64, 64, 6, 1 + i % 5, entity_last=True, factors=DSPRITE_FACTORS),
)
room = _deepmind(
    "objects_room",
    "objects_room_train.tfrecords",
    lambda rng, i: deepmind_image_record(rng, 64, 64, 7, 1 + i % 3, n_bg=4),
)

# spec, converted file writer, convert options, expected splits, overrides for a CPU
CASES = {
    "slot_attention/clevr_128.yaml": (
        clevr,
        dict(splits=PAPER_SPLITS, crop="29:221,64:256", resolution=(128, 128)),
        [],
    ),
    "slot_attention/tetrominoes_35.yaml": (tetrominoes, dict(splits=PAPER_SPLITS), []),
    "slot_attention/multi_dsprites_64.yaml": (dsprites, dict(splits=PAPER_SPLITS), []),
    "genesis/multi_dsprites_64.yaml": (dsprites, dict(splits=THIRDS), []),
    "genesis/objects_room_64.yaml": (room, dict(splits=THIRDS), []),
    "rotating/movi_c_128.yaml": (
        _movi,
        dict(resolution=(32, 32)),
        ["data.resolution=[32,32]", "model.grouper.n_init=1"],
    ),
    "setcon/movi_c_64.yaml": (_movi, dict(resolution=(64, 64)), []),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_standard_spec_builds_trains_and_scores_on_a_converted_file(tmp_path, name):
    write, options, shrink = CASES[name]
    spec_path = ROOT / "configs" / name
    paper = load(spec_path, REGISTRY).spec
    assert paper.data.generate is None and paper.data.dataset == "hdf5"
    assembly.build(load(spec_path, REGISTRY))  # the paper size, with its dry forward pass

    data = write(tmp_path, tmp_path / Path(paper.data.path).name, **options)
    splits = read_info(data).splits
    for split in (paper.data.train_split, paper.data.val_split, paper.data.test_split, paper.eval.split):
        assert split in splits, f"{name} reads split {split!r}, which the converter did not write ({sorted(splits)})"
    resolved = load(spec_path, REGISTRY, [f"data.path={data}", *FAST, *shrink])
    run = train.run(resolved, out=str(tmp_path / "run"), progress=False)
    lines = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    losses = [v for k, v in lines[-1].items() if k.startswith("loss/")]
    assert lines[-1]["step"] == 2 and losses and np.all(np.isfinite(losses))

    resolved, model, _ = load_run(run, REGISTRY)
    scores = evaluate_model(model, resolved, progress=False)
    assert set(scores) == set(paper.eval.metrics)
    assert all(isinstance(v, float) for v in scores.values())
    if "fg_ari" in scores and not np.isnan(scores["fg_ari"]):
        assert -1.0 <= scores["fg_ari"] <= 1.0
