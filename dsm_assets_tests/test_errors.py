"""Every DsmError survives pickling (Dagster sends errors between processes): its type, message and fields."""

from __future__ import annotations

import errno
import inspect
import pickle

import pytest

from dsm_assets import errors

# classes whose constructor takes more than a message; any other class is built from one message
EXAMPLES = {
    errors.RegistryError: lambda: errors.RegistryError(["registry.yaml: datasets[0].name: bad", "registry.yaml: x"]),
    errors.DiskError: lambda: errors.DiskError(errno.ENOSPC, "writing t: /d: No space left on device; free space"),
}
CLASSES = [c for c in vars(errors).values() if inspect.isclass(c) and issubclass(c, errors.DsmError)]


def example(cls: type[errors.DsmError]) -> errors.DsmError:
    return EXAMPLES[cls]() if cls in EXAMPLES else cls("datasets[0]: something is wrong; fix it")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_error_survives_pickling(cls, protocol):
    error = example(cls)
    copy = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(copy) is cls
    assert str(copy) == str(error) and copy.args == error.args and vars(copy) == vars(error)


def test_registry_error_keeps_its_problems_through_pickling():
    copy = pickle.loads(pickle.dumps(errors.RegistryError(["a", "b"])))
    assert copy.problems == ["a", "b"] and str(copy) == "a\nb"


def test_disk_error_keeps_its_errno_and_one_line_message_through_pickling():
    copy = pickle.loads(pickle.dumps(example(errors.DiskError)))
    assert copy.errno == errno.ENOSPC and str(copy).startswith("writing t: /d: No space left")


def test_lineage_error_lives_in_errors_and_still_imports_from_lineage():
    from dsm_assets.lineage import LineageError

    assert LineageError is errors.LineageError and LineageError in CLASSES
