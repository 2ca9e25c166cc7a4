"""One small error hierarchy. Each class also subclasses the matching built-in, so callers that only
know Python's exceptions still catch them. Messages name the file, row or key and say what to do."""


class DsmError(Exception):
    """Base class for every error dsm_assets raises on purpose."""


class RegistryError(DsmError, ValueError):
    """The registry file is missing, malformed or invalid. One line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SourceError(DsmError, ValueError):
    """A raw source file is missing, empty or does not match the registry (columns, types, encoding)."""


class PathEscapeError(DsmError, ValueError):
    """A configured path would resolve outside the data directory."""


class RemoteError(DsmError, RuntimeError):
    """A remote (local directory, Hub, S3) refused or failed an operation. The message names the remote."""


class RemoteAuthError(RemoteError, PermissionError):
    """Credentials missing or rejected; the message says which variable to set."""


class RemoteNotFoundError(RemoteError, LookupError):
    """The repo, bucket, version or file does not exist on the remote."""


class ConcurrentPublishError(RemoteError):
    """Another writer published first (moved the branch or claimed the tag). Nothing of ours was promoted."""


class CacheError(DsmError, RuntimeError):
    """The offline cache is missing, stale, corrupt or cannot be written. Says what to run."""


class StateError(DsmError, ValueError):
    """One of our own state files (a verified record, a lineage.json, …) is unreadable or malformed."""
