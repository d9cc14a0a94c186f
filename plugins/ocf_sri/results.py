"""SRI's expected results (``ocf repro --list``): relation accuracy of unconditional samples,
SRI's prior against GENESIS-v2's independent prior on the same data, seed by seed."""

from ocf.results import Result

SEEDS = [0, 1, 2, 3, 4]

RESULTS = [
    Result(
        name="sri",
        spec="sri/genesis_sri.yaml",
        seeds=SEEDS,
        metric="relation_accuracy",
        floor="baseline + 0.10",
        success="4 of 5",
        baseline="sri_genesis_baseline",
        threads=2,
        max_minutes=30,
        shows="SRI's scene prior generates scenes that obey the data's relation (all sprites one colour) more "
        "often than GENESIS-v2 with an independent slot prior, on at least 4 of 5 seeds.",
    ),
    Result(
        name="sri_genesis_baseline",
        spec="sri/genesis_baseline.yaml",
        seeds=SEEDS,
        metric="relation_accuracy",
        shows="The baseline sri is measured against: GENESIS-v2 with the independent N(0, I) slot prior.",
    ),
]
