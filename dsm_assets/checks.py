"""What every core check returns. The Dagster layer turns each CheckOutcome into an AssetCheckResult
(`defs/checks.py`); tests call the core check functions directly, without dagster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
