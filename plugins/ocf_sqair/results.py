"""AIR's and SQAIR's expected results (``ocf repro --list``): count accuracy on moving digits."""

from ocf.results import Result, Run

AIR = "sqair/air_digits_32.yaml"

RESULTS = [
    Result(
        name="air_digits",
        spec=AIR,
        seeds=[0, 1, 2],
        metric="count_accuracy",
        floor=0.8,
        shows="AIR counts the digits of 32x32 images (fraction of frames with the right number of present "
        "objects) on every seed.",
    ),
    Result(
        name="sqair_digits",
        spec="sqair/sqair_digits_32.yaml",
        init_from=Run(spec=AIR),
        seeds=[0, 1, 2],
        metric="count_accuracy",
        floor=0.75,
        shows="SQAIR, started from the AIR run of the same seed, keeps counting digits over 3-frame clips.",
    ),
]
