"""Exceptions ocf shows to users.

:class:`UserError` (and subclasses) are mistakes a user can fix: the CLI prints the message
and exits 2 without a traceback.  Anything else is a bug: exit 1 with a traceback.
"""


class UserError(Exception):
    """A mistake in input (spec, file, option) the user can fix; exit code 2."""

    exit_code = 2


class SpecError(UserError):
    """One or more problems in a spec, each with its path (``model.grouper.num_slots``)."""

    #: problems shown in the message; the rest are counted (all stay in ``problems``)
    SHOWN = 20

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = self.problems[: self.SHOWN]
        if len(self.problems) > self.SHOWN:
            shown.append(f"... and {len(self.problems) - self.SHOWN:,} more problems")
        super().__init__("\n".join(shown))


class RegistryError(UserError):
    """An unknown or duplicate name in the registry."""


class DataError(UserError):
    """A dataset file that is missing, malformed, truncated or does not match the spec."""


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable, malformed or does not fit the model."""


class OutputError(UserError):
    """An output path that cannot be written: a read-only or full disk, or a file where a folder should be."""


class MissingDependencyError(UserError):
    """An optional dependency (a pip extra such as ``ocf[vit]``) that a component needs is not installed."""


class TrainingError(Exception):
    """Training cannot go on (e.g. a NaN loss); exit code 1."""

    exit_code = 1


class ComponentError(Exception):
    """A component failed for a reason that is not a spec problem (its ``__init__`` or
    ``forward`` raised); the message names the stage, the component and its plugin.  Exit 1."""

    exit_code = 1
