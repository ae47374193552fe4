"""Entity kinds: one module each, on one mechanism (see :mod:`.kind`).

Importing this package registers every built-in kind. To add one: a module here that calls
:func:`register` with its :class:`Kind`, an import below, a migration, and a ``trigger``
fixture (README, "Adding an entity kind").
"""

from . import (  # noqa: F401  (each registers its kind)
    domains,
    invitations,
    memberships,
    organizations,
    permissions,
    roles,
    sessions,
    users,
    waitlist,
)
from .kind import Delete, Kind, Plan, Upsert, Write
from .registry import (
    check_parents,
    children,
    handled_types,
    kind_named,
    kinds,
    register,
    route,
    scrubbed_by,
    tables,
)

check_parents()

__all__ = [
    "Delete",
    "Kind",
    "Plan",
    "Upsert",
    "Write",
    "children",
    "handled_types",
    "kind_named",
    "kinds",
    "register",
    "route",
    "scrubbed_by",
    "tables",
]
