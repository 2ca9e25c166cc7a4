"""Benchmarks: `python -m bench` (what `make bench` runs) prints one table of ratios, each measured in the
same run against a baseline on the same data. Each bench_* module's `measure()` returns its lines."""

import atexit
import os
import shutil
import tempfile

# Before anything imports huggingface_hub: no telemetry, no progress bars in the table's output, and a
# throwaway HF cache, removed at exit.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="dsm-bench-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], True)
