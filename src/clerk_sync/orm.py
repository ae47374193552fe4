"""A declarative base for an application's own ORM models, beside clerk-sync's tables.

Kept apart from the package's import so that only an application that asks for
:class:`Base` loads ``sqlalchemy.orm`` (clerk-sync itself uses SQLAlchemy Core alone).
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from .entities import tables


class Base(DeclarativeBase):
    """A declarative base whose metadata holds clerk-sync's tables, so an application's ORM
    models can name ``users.id`` / ``organizations.id`` in a ``ForeignKey``."""

    metadata = tables().metadata
