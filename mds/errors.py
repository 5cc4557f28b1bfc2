"""Exception hierarchy. The CLI turns every :class:`MdsError` into a one-line message."""


class MdsError(Exception):
    """Base class for errors that are the user's to fix (bad input, missing setup)."""

    exit_code = 1


class ConfigError(MdsError):
    """Invalid or missing configuration."""


class DatabaseError(MdsError):
    """The database cannot be reached or is not at the expected schema."""


class PoolError(MdsError):
    """A pool operation failed (unknown video, bad manifest, nothing ingested)."""


class VideoError(MdsError):
    """A video cannot be probed or decoded."""


class EvaluatorError(MdsError):
    """An evaluator cannot be created or run."""


class ParseError(MdsError):
    """A model answer could not be parsed."""


class SelectionError(MdsError):
    """A selection cannot be made (empty candidates, bad budget, missing scores)."""


class LabelingError(MdsError):
    """The annotation backend failed (e.g. Label Studio unreachable)."""


class TrainingError(MdsError):
    """Training or fine-tuning failed."""
