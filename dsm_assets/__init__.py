"""dsm_assets: dataset management for ML teams as a Dagster asset graph.

The core modules (registry, fingerprint, sources, cleaning, quality, …) import neither dagster nor the
network; the Dagster layer lives in `dsm_assets.defs` and `dsm_assets.definitions`."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`dsm_assets.load`, `decode_audio`, `with_audio_decoding` and `record_model` without importing pyarrow
    or datasets on `import dsm_assets`."""
    if name == "load":
        from dsm_assets.loading import load

        return load
    if name in ("decode_audio", "with_audio_decoding"):
        from dsm_assets import loading

        return getattr(loading, name)
    if name == "record_model":
        from dsm_assets.recording import record_model

        return record_model
    raise AttributeError(f"module 'dsm_assets' has no attribute {name!r}")
