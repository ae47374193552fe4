"""Handler registration: event names are checked, and one type has at most one handler."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import clerk_sync.sync  # noqa: F401  (importing the package registers the built-in handlers)
from clerk_sync.events import Envelope
from clerk_sync.sync.registry import (
    _DECODERS,
    EVENT_NAME,
    Action,
    decoder_for,
    handled_types,
    handles,
)

THROWAWAY = "clerkSyncTest.registryProbe"


def first_decoder(envelope: Envelope) -> Action:
    raise NotImplementedError


def second_decoder(envelope: Envelope) -> Action:
    raise NotImplementedError


@pytest.fixture
def throwaway() -> Iterator[str]:
    """A type name no real handler uses, removed from the registry afterwards."""
    assert THROWAWAY not in _DECODERS
    try:
        yield THROWAWAY
    finally:
        _DECODERS.pop(THROWAWAY, None)


@pytest.mark.parametrize(
    "name",
    [
        "user",
        "User.created",
        "user.created.x",
        "",
        "user.Created",
        "user_created",
        "user.",
        ".created",
        " user.created",
        "user.created ",
        "user.deleted2",
        "user-profile.updated",
    ],
)
def test_bad_event_names_are_refused(name: str) -> None:
    before = dict(_DECODERS)
    try:
        with pytest.raises(
            ValueError, match=re.escape("is not a Clerk event name like 'user.created'")
        ):
            handles(name)(first_decoder)
    finally:
        _DECODERS.pop(name, None)
    assert before == _DECODERS


def test_name_with_trailing_newline_is_refused() -> None:
    name = "clerkSyncTest.newline\n"
    try:
        with pytest.raises(ValueError, match="is not a Clerk event name"):
            handles(name)(first_decoder)
    finally:
        _DECODERS.pop(name, None)


@pytest.mark.parametrize("name", ["user.created", "organizationMembership.created", "a.b"])
def test_clerk_style_names_match_the_pattern(name: str) -> None:
    assert EVENT_NAME.fullmatch(name)


def test_register_then_look_up(throwaway: str) -> None:
    assert handles(throwaway)(first_decoder) is first_decoder
    assert decoder_for(throwaway) is first_decoder
    assert throwaway in handled_types()


def test_second_handler_for_a_type_is_refused(throwaway: str) -> None:
    handles(throwaway)(first_decoder)
    with pytest.raises(ValueError, match="already has a handler: first_decoder"):
        handles(throwaway)(second_decoder)
    assert decoder_for(throwaway) is first_decoder


def test_second_handler_for_a_built_in_type_is_refused() -> None:
    original = decoder_for("user.created")
    assert original is not None
    try:
        with pytest.raises(ValueError, match=re.escape("'user.created' already has a handler")):
            handles("user.created")(second_decoder)
    finally:
        _DECODERS["user.created"] = original
    assert decoder_for("user.created") is original


def test_unknown_type_has_no_decoder() -> None:
    assert decoder_for("session.created") is None
    assert decoder_for("") is None


def test_built_in_user_types_are_handled() -> None:
    types = handled_types()
    assert {"user.created", "user.updated", "user.deleted"} <= set(types)
    assert types == sorted(types)
    for name in ("user.created", "user.updated", "user.deleted"):
        assert callable(decoder_for(name))
