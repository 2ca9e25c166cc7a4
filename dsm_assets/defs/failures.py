"""Turn the core's DsmError (and a disk error no core function expected) into a Dagster Failure: the UI
shows our one-line message, not a traceback."""

import contextlib
from collections.abc import Iterator

import dagster as dg

from dsm_assets.errors import DsmError, disk_error


@contextlib.contextmanager
def as_failure() -> Iterator[None]:
    try:
        yield
    except DsmError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    except OSError as exc:
        translated = disk_error(exc, "the data or outputs dir", "dsm_assets")
        if translated is None:
            raise
        raise dg.Failure(description=str(translated), allow_retries=False) from None
