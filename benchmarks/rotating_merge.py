"""Merge fidelity results of seeds run as separate processes (to use both shared cores)
into one result file, as if `benchmarks/fidelity.py --seeds ...` had run them in turn.

    python -m benchmarks.rotating_merge rotating-4shapes_32-n8 rotating-4shapes_32-n8-part0 rotating-4shapes_32-n8-part1
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str]) -> int:
    from benchmarks.fidelity import merge_records

    name, parts = argv[0], argv[1:]
    merged = merge_records(name, [json.loads((RESULTS / f"{p}.json").read_text()) for p in parts])
    (RESULTS / f"{name}.json").write_text(json.dumps(merged, indent=2))
    for p in parts:
        (RESULTS / f"{p}.json").unlink()
    print(f"wrote {RESULTS / name}.json from {', '.join(parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
