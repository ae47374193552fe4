"""Users and organizations: search, and a page each with what is known about them — fields,
metadata, organizations and roles, sessions, and every delivery that made the row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import Response

from ...entities import kind_named
from ...store import activity, reads
from . import present
from .base import Admin
from .session import Session

PAGE = 50
TIMELINE = 100
MAX_QUERY_CHARS = 200


def _cursor(request: Request) -> str | None:
    cursor = request.query_params.get("cursor") or None
    return cursor if cursor and len(cursor) <= 255 and "\x00" not in cursor else None


def _query(request: Request) -> str:
    return request.query_params.get("q", "").replace("\x00", "").strip()[:MAX_QUERY_CHARS]


class People:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    async def users(self, request: Request, session: Session) -> Response:
        """``GET /admin/users?q=&cursor=``: a part of an e-mail, name, username or id (``%``
        and ``_`` are matched as themselves)."""
        return await self._list(request, session, "user", "users.html", "Users")

    async def organizations(self, request: Request, session: Session) -> Response:
        return await self._list(
            request, session, "organization", "organizations.html", "Organizations"
        )

    async def _list(
        self, request: Request, session: Session, kind_name: str, template: str, title: str
    ) -> Response:
        kind = kind_named(kind_name)
        q = _query(request)
        rows, next_cursor = await self.admin.db(
            reads.list_rows,
            self.admin.engine,
            self.admin.tables,
            kind.name,
            kind.read_fields(),
            limit=PAGE,
            cursor=_cursor(request),
            search=(kind.searched, q) if q else None,
        )
        return self.admin.render(
            request,
            template,
            session=session,
            title=title,
            nav=kind.table,
            rows=rows,
            q=q,
            next_cursor=next_cursor,
            paged=bool(_cursor(request)),
        )

    async def user(self, request: Request, session: Session) -> Response:
        """``GET /admin/users/{id}``"""
        user_id = request.path_params["user_id"]
        found = await self.admin.db(self._user, user_id)
        if found is None:
            return await self._missing(request, session, "user", user_id)
        return self.admin.render(
            request, "user.html", session=session, title="User", nav="users", **found
        )

    async def organization(self, request: Request, session: Session) -> Response:
        """``GET /admin/organizations/{id}``"""
        org_id = request.path_params["organization_id"]
        found = await self.admin.db(self._organization, org_id)
        if found is None:
            return await self._missing(request, session, "organization", org_id)
        return self.admin.render(
            request,
            "organization.html",
            session=session,
            title="Organization",
            nav="organizations",
            **found,
        )

    async def _missing(
        self, request: Request, session: Session, kind: str, object_id: str
    ) -> Response:
        deleted = await self.admin.db(self._deleted_at, kind, object_id)
        why = f"deleted {present.when(deleted)}" if deleted else "never synced"
        return self.admin.render(
            request,
            "problem.html",
            404,
            session=session,
            title="Not found",
            message=f"No {kind} {object_id!r} here: {why}.",
        )

    def _deleted_at(self, kind: str, object_id: str) -> int | None:
        t = self.admin.tables.tombstones
        with self.admin.engine.connect() as conn:
            found = conn.execute(
                select(t.c.deleted_at).where(t.c.kind == kind).where(t.c.id == object_id)
            ).scalar()
        return int(found) if found is not None else None

    def _object(self, conn: Connection, kind_name: str, object_id: str) -> dict[str, Any] | None:
        kind = kind_named(kind_name)
        table = self.admin.tables.entity(kind.name)
        fields = kind.read_fields()
        row = conn.execute(
            select(*[table.c[n] for n in fields], table.c.data).where(table.c.id == object_id)
        ).first()
        if row is None:
            return None
        found = dict(zip(fields, row, strict=False))
        found["data"] = row[-1] if isinstance(row[-1], dict) else {}
        return found

    def _children(
        self, conn: Connection, kind_name: str, column: str, value: str
    ) -> list[dict[str, Any]]:
        kind = kind_named(kind_name)
        table = self.admin.tables.entity(kind.name)
        fields = kind.read_fields()
        rows = conn.execute(
            select(*[table.c[n] for n in fields]).where(table.c[column] == value).limit(200)
        )
        return [dict(zip(fields, r, strict=True)) for r in rows]

    def _names(self, conn: Connection, kind_name: str, ids: set[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        kind = kind_named(kind_name)
        table = self.admin.tables.entity(kind.name)
        fields = kind.read_fields()
        rows = conn.execute(select(*[table.c[n] for n in fields]).where(table.c.id.in_(ids)))
        return {r[0]: dict(zip(fields, r, strict=True)) for r in rows}

    def _user(self, user_id: str) -> dict[str, Any] | None:
        with self.admin.engine.connect() as conn:
            user = self._object(conn, "user", user_id)
            if user is None:
                return None
            memberships = self._children(conn, "organization_membership", "user_id", user_id)
            organizations = self._names(
                conn, "organization", {m["organization_id"] for m in memberships}
            )
            sessions = self._children(conn, "session", "user_id", user_id)
            sessions.sort(key=lambda s: s.get("last_active_at") or 0, reverse=True)
            deliveries = activity.user_deliveries(conn, self.admin.tables, user_id, limit=TIMELINE)
            timeline = self._timeline(conn, deliveries)
        data = user.pop("data")
        metadata = {
            "public": data.get("public_metadata", user.get("public_metadata")) or {},
            "private": data.get("private_metadata") or {},
            "unsafe": data.get("unsafe_metadata", user.get("unsafe_metadata")) or {},
        }
        return {
            "user": user,
            "identifiers": _identifiers(data),
            "metadata": metadata,
            "memberships": memberships,
            "organizations": organizations,
            "sessions": sessions,
            "timeline": timeline,
            "timeline_full": len(deliveries) == TIMELINE,
        }

    def _timeline(self, conn: Connection, deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Each delivery with what it changed: compared with the previous processed delivery
        about the same object, found further down this list or else in the log."""
        shown: list[dict[str, Any]] = []
        for i, event in enumerate(deliveries):
            changes: list[present.Change] = []
            action = str(event.get("type") or "").rpartition(".")[2]
            if event["status"] == "processed" and event["payload"] and action != "deleted":
                before = next(
                    (
                        e["payload"]
                        for e in deliveries[i + 1 :]
                        if e["subject_id"] == event["subject_id"]
                        and e["status"] == "processed"
                        and str(e["type"]).partition(".")[0] == str(event["type"]).partition(".")[0]
                    ),
                    None,
                )
                if before is None and i + 1 == len(deliveries):
                    before = activity.previous_body(conn, self.admin.tables, event)
                if before is not None:
                    changes = present.changes(present.body(before), present.body(event["payload"]))
            shown.append({**event, "changes": changes})
        return shown

    def _organization(self, org_id: str) -> dict[str, Any] | None:
        with self.admin.engine.connect() as conn:
            organization = self._object(conn, "organization", org_id)
            if organization is None:
                return None
            members = self._children(conn, "organization_membership", "organization_id", org_id)
            users = self._names(conn, "user", {m["user_id"] for m in members if m["user_id"]})
            invitations = self._children(conn, "organization_invitation", "organization_id", org_id)
        organization.pop("data")
        return {
            "organization": organization,
            "members": members,
            "users": users,
            "invitations": invitations,
        }


def _identifiers(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, value, note) for every e-mail, phone and connected account of a user."""
    found: list[tuple[str, str, str]] = []
    primary = {data.get("primary_email_address_id"), data.get("primary_phone_number_id")}
    for key, kind, field in (
        ("email_addresses", "e-mail", "email_address"),
        ("phone_numbers", "phone", "phone_number"),
        ("web3_wallets", "wallet", "web3_wallet"),
    ):
        for item in data.get(key) or []:
            if isinstance(item, dict) and item.get(field):
                status = (item.get("verification") or {}).get("status") or ""
                note = ", ".join(
                    n for n in ("primary" if item.get("id") in primary else "", status) if n
                )
                found.append((kind, str(item[field]), note))
    for account in data.get("external_accounts") or []:
        if isinstance(account, dict):
            provider = str(account.get("provider") or account.get("object") or "account")
            value = account.get("email_address") or account.get("username") or ""
            found.append((provider.removeprefix("oauth_"), str(value), "connected account"))
    return found
