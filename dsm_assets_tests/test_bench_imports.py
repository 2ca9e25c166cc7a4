"""`make bench` is not part of `make test` (it takes minutes), so a bench module that no longer imports (a
helper renamed in a sibling) would go unseen until someone runs it: import every one, as `python -m bench`
does first."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("name", MODULES)
def test_every_bench_module_imports(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    module = importlib.import_module(f"bench.{name}")
    if name.startswith("bench_"):
        assert callable(module.measure), f"bench/{name}.py has no measure() for python -m bench"


def test_the_bench_list_names_every_bench_module():
    sys.path.insert(0, str(ROOT))
    main = importlib.import_module("bench.__main__")
    listed = {m.__name__.rpartition(".")[2] for m in vars(main).values() if getattr(m, "measure", None)}
    assert listed == {m for m in MODULES if m.startswith("bench_")}
