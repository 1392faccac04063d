"""Retained freed memory on glibc: applied once, and left alone when the user says so."""

import platform

import pytest

from seqgen import allocator


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(allocator, "_done", False)
    for key in (allocator.OPT_OUT, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_thresholds_are_raised_once_on_glibc(fresh):
    assert allocator.retain_freed_memory() and allocator._done
    assert allocator.retain_freed_memory()  # idempotent


@pytest.mark.parametrize("key", [allocator.OPT_OUT, "MALLOC_MMAP_THRESHOLD_"])
def test_the_users_own_setting_wins(fresh, key):
    fresh.setenv(key, "1")
    assert not allocator.retain_freed_memory() and not allocator._done
