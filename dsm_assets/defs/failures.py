"""Turn the core's DsmError into a Dagster Failure: the UI shows our one-line message, not a traceback."""

import contextlib
from collections.abc import Iterator

import dagster as dg

from dsm_assets.errors import DsmError


@contextlib.contextmanager
def as_failure() -> Iterator[None]:
    try:
        yield
    except DsmError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
