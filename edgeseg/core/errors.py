"""Typed errors. Library code raises these; only the CLI turns them into exit codes."""


class EdgesegError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class ConfigError(EdgesegError):
    """An invalid option or configuration value."""

    exit_code = 2


class DataError(EdgesegError):
    """A dataset that is missing, incomplete or malformed."""


class ModelError(EdgesegError):
    """A model that cannot be built or loaded with the given settings."""


class ExportError(EdgesegError):
    """A model that cannot be converted or written."""
