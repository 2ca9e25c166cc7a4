"""The Dagster layer: turns registry entries into assets and checks. No data logic lives here."""
