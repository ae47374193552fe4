"""Column shorthands for the kinds' tables, so each kind module reads as a list of fields."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Integer, String, Text

from ..store.schema import JsonType


def ident(name: str, *, index: bool = False) -> Column[Any]:
    """A Clerk id (or other short key)."""
    return Column(name, String(255), index=index)


def text(name: str) -> Column[Any]:
    return Column(name, Text)


def email(name: str, *, index: bool = True) -> Column[Any]:
    return Column(name, String(320), index=index)


def status(name: str = "status") -> Column[Any]:
    return Column(name, String(32))


def ms(name: str) -> Column[Any]:
    """A Clerk time: milliseconds since the epoch, unchanged."""
    return Column(name, BigInteger)


def count(name: str) -> Column[Any]:
    return Column(name, Integer)


def flag(name: str) -> Column[Any]:
    return Column(name, Boolean)


def json(name: str, *, nullable: bool = False) -> Column[Any]:
    return Column(name, JsonType, nullable=nullable)
