from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dsm_assets.cli import main
from dsm_assets.lineage import LineageError, chain, read_lineage
from dsm_assets.shards import write_shards

from .caching import cache_latest, publish_and_verify, train_text


@pytest.fixture
def trained(data_dir, shipped, tmp_path):
    spec = shipped.get("text_reviews")
    p = publish_and_verify(spec, data_dir)
    cached = cache_latest(p, data_dir)
    outputs = tmp_path / "outputs"
    sharded = write_shards(spec, cached.path, outputs)
    result = train_text(shipped.model("sentiment"), spec, sharded.folder, outputs, run_id="r1",
                        upstream={"remote_url": p.outcome.url})
    return p, cached, result


def test_dsm_lineage_prints_the_commit_the_cache_and_published_version_carry(trained, capsys):
    p, cached, result = trained
    assert main(["lineage", "sentiment"]) == 0
    out = capsys.readouterr().out
    [published] = [ln for ln in out.splitlines() if ln.startswith("published")]
    assert f"commit {p.outcome.commit}" in published and p.outcome.commit[:12] in cached.path.name
    assert [ln.split()[0] for ln in out.splitlines()[2:]] == ["model", "shards", "cache", "published", "cleaned",
                                                              "raw"]
    assert main(["lineage", "sentiment", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["lineage"]["model_version"] == result.version and data["chain"][2]["present"] is True


def test_unknown_model_and_version(trained, capsys):
    assert main(["lineage", "nope"]) == 2
    assert "no model named 'nope' (registered: sentiment, shapes_clf)" in capsys.readouterr().err
    assert main(["lineage", "sentiment", "--version", "v9.9-x"]) == 2
    assert f"model 'sentiment' has no version 'v9.9-x' (trained: {trained[2].version})" in capsys.readouterr().err


def test_no_trained_model_yet(tmp_path):
    with pytest.raises(LineageError, match=r"no trained versions of model 'sentiment'.*materialise models/sentiment"):
        read_lineage(tmp_path, "sentiment")


def test_a_version_no_longer_cached_is_still_reported_and_marked(trained, capsys):
    _, cached, _ = trained
    shutil.rmtree(cached.path)
    assert main(["lineage", "sentiment"]) == 0
    [cache_row] = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("cache")]
    assert cache_row.rstrip().endswith("NOT CACHED any more")


def test_chain_is_built_from_the_lineage_file(trained, data_dir, shipped):
    _, cached, result = trained
    rows = chain(result.lineage, cached.path.parent.parent)
    assert rows[2]["present"] and rows[3]["what"] == "text_reviews v1.0"


@pytest.mark.parametrize("garbage", [b"garbage{", b"[]", b"{}", b"\xff\x00{", b'{"model": "s", "model_version": "v",'
                                     b' "metrics": {}, "dataset": {"name": "t"}}'])
def test_a_bad_lineage_json_is_one_line_in_dsm_lineage_and_retrained_by_the_next_run(trained, shipped, capsys,
                                                                                    garbage):
    _, _, result = trained
    lineage = result.folder / "lineage.json"
    lineage.write_bytes(garbage)
    assert main(["lineage", "sentiment"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(lineage) in err and "materialise models/sentiment" in err
    spec = shipped.get("text_reviews")
    again = train_text(shipped.model("sentiment"), spec, Path(result.lineage["dataset"]["shards"]["folder"]),
                       result.folder.parent.parent.parent, run_id="r2")
    assert again.trained and again.version == result.version  # repaired: the same version, trained again
    assert main(["lineage", "sentiment"]) == 0
