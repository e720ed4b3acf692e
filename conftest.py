"""Test set-up: the Hub is offline and every cache lives in a temporary folder.

These variables must be set before anything imports huggingface_hub or transformers.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_TMP_HOME = Path(tempfile.mkdtemp(prefix="zoo-tests-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_TMP_HOME / "hf")
os.environ["ZOO_HOME"] = str(_TMP_HOME / "zoo")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

# Property-based tests: a small, derandomized run in the suite (same examples on every machine);
# `HYPOTHESIS_PROFILE=fuzz` runs 30,000 examples per target by hand (the slow targets of tests/test_fuzz.py
# take a share of either count: see its docstring).
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a dev dependency
    pass
else:
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile(
        "ci", max_examples=150, derandomize=True, deadline=None, database=None, suppress_health_check=_quiet
    )
    settings.register_profile(
        "fuzz", max_examples=30_000, deadline=None, database=None, suppress_health_check=_quiet
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
