"""Fixture ids look like Clerk's and Svix's: a prefix and a 27-character base62 KSUID."""

from __future__ import annotations

import re
import time

import pytest

from clerk_sync.devtools import fixtures, new_id

KSUID = re.compile(r"[0-9A-Za-z]{27}")


@pytest.mark.parametrize("prefix", ["user", "msg", "idn", "org"])
def test_shape(prefix: str) -> None:
    value = new_id(prefix)
    head, _, ksuid = value.partition("_")
    assert head == prefix
    assert KSUID.fullmatch(ksuid)


def test_ids_are_unique() -> None:
    assert len({new_id("msg") for _ in range(2000)}) == 2000


def test_ids_sort_by_creation_second(monkeypatch: pytest.MonkeyPatch) -> None:
    now = time.time()
    monkeypatch.setattr(fixtures.time, "time", lambda: now)
    earlier = [new_id("user") for _ in range(50)]
    monkeypatch.setattr(fixtures.time, "time", lambda: now + 1)
    later = [new_id("user") for _ in range(50)]
    assert max(earlier) < min(later)


def test_the_timestamp_is_the_first_four_bytes() -> None:
    ksuid = new_id("user")[5:]
    value = 0
    for char in ksuid:
        value = value * 62 + fixtures._BASE62.index(char)
    seconds = (value >> 128) + 1_400_000_000
    assert abs(seconds - time.time()) < 5
