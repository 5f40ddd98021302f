"""One family of errors; the CLI maps each class to an exit code and prints its message."""


class SparkprepError(Exception):
    """Base class: the message says what went wrong, where, and what to do."""

    exit_code = 1


class ConfigError(SparkprepError):
    """The configuration is invalid (unknown key, wrong type, missing field)."""

    exit_code = 2


class InputError(SparkprepError):
    """The input cannot be used as it is (missing path, wrong format, missing column)."""

    exit_code = 3


class ContractError(SparkprepError):
    """A produced dataset breaks the data contract (row accounting, folds, manifest)."""

    exit_code = 4
