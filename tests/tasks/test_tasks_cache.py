"""The cache layout and its keys: where files go, and keys pinned so a refactor cannot orphan the caches
already on disk (a changed key silently recomputes every feature file)."""

from __future__ import annotations

import hashlib
import json

from tasks_helpers import small_embedded

from tasks import FeatureConfig, get_task, load_features
from tasks.cache import cache_dir, digest, embedded_dir, feature_dir, hf_dir
from tasks.data import source_identity


def test_digest_is_a_prefix_of_the_sha256_of_canonical_json():
    key = {"b": [1, 2.5, None], "a": "x"}
    full = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    assert digest(key) == full[:16] and digest(key, length=12) == full[:12]
    assert digest({"a": "x", "b": [1, 2.5, None]}) == digest(key)  # key order does not matter
    assert digest({"p": get_task}) == digest({"p": str(get_task)})  # non-JSON values by str


def test_layout_follows_the_cache_dir(private_cache):
    assert cache_dir() == private_cache
    assert embedded_dir("toy-rhythm") == private_cache / "embedded" / "toy-rhythm"
    assert feature_dir("esc50") == private_cache / "features" / "esc50"
    assert hf_dir() == private_cache / "hf"


def test_cache_keys_are_pinned(private_cache):
    """Pinned values (change them only on purpose: generator v3 moved them)."""
    assert source_identity(get_task("toy-transients")) == "embedded:seed0-fe927bd8ab56"
    assert source_identity(get_task("toy-rhythm")) == "embedded:seed0-2774d7c9851a"
    spec = small_embedded("toy-transients", 5, 5, 5)
    load_features(spec, "test", FeatureConfig(n_mels=16, hop_ms=5.0))
    files = {p.relative_to(private_cache).as_posix() for p in private_cache.rglob("*")
             if p.is_file() and p.relative_to(private_cache).parts[0] != "hf"}
    # waveforms-v2 (issue 21): int16 waveforms, no log-mel files; the v1 names (waveform-*, logmel-*) are
    # never read again (docs/tasks.md says what may be deleted)
    assert {"embedded/toy-transients/seed0-68dfc671b1dd/test.parquet",
            "features/toy-transients/waveforms-test-f454cb01683acde3.arrow",
            "features/toy-transients/waveforms-train-aebf93db1fd3661e.arrow",
            "features/toy-transients/stats-30cbdecb561e9721.json"} <= files
