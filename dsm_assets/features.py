"""The `datasets` features of a registry schema, in the two places `datasets` looks for them:

- the parquet's Arrow schema metadata, key `huggingface` (`schema_metadata`), byte for byte what
  `datasets.Features.arrow_schema` writes, so `Dataset.from_parquet` and `Features.from_arrow_schema`
  give `Image()`, `Audio()`, `List` and struct features;
- the dataset card's `dataset_info: features:` (`yaml_features`), the YAML list form
  `DatasetInfo._to_yaml_dict` writes, so `datasets.load_dataset(<folder or repo>)` does too.

Built from the registry type names alone: no `datasets` import (cleaning does not need it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dsm_assets.arrow_types import hf_feature

METADATA_KEY = "huggingface"


def hf_features(schema: Mapping[str, str]) -> dict[str, Any]:
    """Column → feature dict, keys in the order `datasets.Features.to_dict()` gives them."""
    return {col: _in_datasets_order(hf_feature(typ)) for col, typ in schema.items()}


def _in_datasets_order(feature: dict[str, Any]) -> dict[str, Any]:
    kind = feature.get("_type")
    if kind == "Value":
        return {"dtype": feature["dtype"], "_type": "Value"}
    if kind == "List":
        return {"feature": _in_datasets_order(feature["feature"]), "_type": "List"}
    if kind is not None:  # Image, Audio: only their type (every option at its default)
        return {"_type": kind}
    return {name: _in_datasets_order(child) for name, child in feature.items()}  # a struct


def schema_metadata(schema: Mapping[str, str]) -> dict[str, str]:
    """The Arrow schema metadata `datasets` writes for these columns: `{"huggingface": '{"info": …}'}`."""
    return {METADATA_KEY: json.dumps({"info": {"features": hf_features(schema)}})}


def yaml_features(schema: Mapping[str, str]) -> list[dict[str, Any]]:
    """The card's `dataset_info.features` list: `[{name: id, dtype: int64}, {name: image, dtype: image}, …]`."""
    return [{"name": col, **_yaml(hf_feature(typ))} for col, typ in schema.items()]


def _yaml(feature: dict[str, Any]) -> dict[str, Any]:
    kind = feature.get("_type")
    if kind == "Value":
        return {"dtype": feature["dtype"]}
    if kind == "List":
        inner = _yaml(feature["feature"])
        if list(inner) == ["dtype"]:  # `list: int64`
            return {"list": inner["dtype"]}
        if list(inner) == ["struct"]:  # `list: [- name: …]`
            return {"list": inner["struct"]}
        return {"list": inner}
    if kind is not None:
        return {"dtype": kind.lower()}  # Image → image, Audio → audio
    return {"struct": [{"name": name, **_yaml(child)} for name, child in feature.items()]}
