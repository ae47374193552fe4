"""The public surface: exactly what ``clerk_sync`` exports, and that it ships typed."""

from __future__ import annotations

from importlib import resources

import pytest

import clerk_sync

PUBLIC_NAMES = [
    "Base",
    "ChangeEvent",
    "ClerkSyncError",
    "ConfigError",
    "Delivery",
    "Hook",
    "InTransactionHook",
    "InvalidPayload",
    "Naming",
    "Outcome",
    "Receiver",
    "RejectedDelivery",
    "SchemaError",
    "Settings",
    "SignedHeaders",
    "Status",
    "StoreUnavailable",
    "Tables",
    "UserDeletedHook",
    "Verifier",
    "__version__",
    "after_commit",
    "create_app",
    "ensure_schema",
    "ensure_user",
    "handled_types",
    "in_transaction",
    "make_engine",
    "metadata",
    "organizations_table",
    "tables",
    "upgrade",
    "users_table",
]


def test_all_is_pinned() -> None:
    """Adding or removing a public name is a deliberate change: update this list with it."""
    assert clerk_sync.__all__ == PUBLIC_NAMES


def test_all_is_sorted_without_duplicates() -> None:
    assert sorted(set(clerk_sync.__all__)) == clerk_sync.__all__


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from clerk_sync import {name}", namespace)  # noqa: S102 - fixed names only
    assert namespace[name] is getattr(clerk_sync, name)


def test_star_import_gives_exactly_the_public_names() -> None:
    namespace: dict[str, object] = {}
    exec("from clerk_sync import *", namespace)  # noqa: S102 - fixed statement
    namespace.pop("__builtins__")
    assert sorted(namespace) == PUBLIC_NAMES


def test_version_is_a_string() -> None:
    assert isinstance(clerk_sync.__version__, str)
    assert clerk_sync.__version__.count(".") == 2


def test_py_typed_ships_in_the_package() -> None:
    marker = resources.files("clerk_sync").joinpath("py.typed")
    assert marker.is_file()
