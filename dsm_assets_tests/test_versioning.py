from dsm_assets.versioning import latest_tag, next_tag, parse_tag, schema_hash


def test_latest_tag_is_numeric_and_ignores_other_tags():
    assert latest_tag(["v1.9", "v1.10", "v1.2", "release", "v0.99"]) == "v1.10"
    assert latest_tag(["v2.0", "v1.10"]) == "v2.0"
    assert latest_tag(["nightly"]) is None and latest_tag([]) is None
    assert parse_tag("v3.14") == (3, 14) and parse_tag("3.14") is None


def test_next_tag_rules():
    s1, s2 = schema_hash({"a": "int64"}), schema_hash({"a": "string"})
    assert next_tag(None, None, None, "h1", s1) == "v1.0"
    assert next_tag("v1.0", "h1", s1, "h1", s1) is None  # unchanged content: nothing to publish
    assert next_tag("v1.0", "h1", s1, "h2", s1) == "v1.1"
    assert next_tag("v1.9", "h1", s1, "h2", s1) == "v1.10"
    assert next_tag("v1.3", "h1", s1, "h2", s2) == "v2.0"


def test_schema_hash_sees_names_types_and_order():
    base = schema_hash({"a": "int64", "b": "string"})
    assert base != schema_hash({"b": "string", "a": "int64"})
    assert base != schema_hash({"a": "int64", "b": "list<string>"})
    assert base == schema_hash({"a": "int64", "b": "string"})
