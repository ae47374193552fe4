"""Throughput, latency and memory of clerk-sync against the limit and the tutorial baseline.

    python bench/run.py            # the full run (about 20 minutes on 2 cores)
    python bench/run.py --quick    # a smoke run (under a minute)

Three targets, run alternately in one invocation on the same machine:
  (a) `clerk-sync serve`, default settings;
  (b) verify-only: a bare ASGI endpoint that checks the svix signature and answers 200, on the
      same uvicorn/uvloop/httptools stack — the limit;
  (c) the tutorial receiver: FastAPI + svix + SQLAlchemy ORM, a session and commit per request.
Each delivery is unique, signed with the svix signer, ~2 KB, and is sent exactly once by wrk
(loadgen.lua). Two mixes (--mix): the user mix, 60/30/10 created / updated-existing / deleted
users (every target); and the organization mix, for (a) beside the user mix on each database:
organizations created/updated, memberships created/updated/deleted, sessions created/ended with
the full user embedded. After each run of (a) the tables are compared with the state the
deliveries imply, and every delivery must be in the event log. Then (a) again at 32
connections on SQLite, alternately without and with 1,000 idle connections held open beside
the load (--idle), and alternately without and with 20 dashboards' live feeds (SSE) open
(--sse). Before all that, start-up (--startup): the median wall time of 5 starts each
of `python -c pass`, `clerk-sync --help` and `clerk-sync users list`. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import resource
import secrets
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sse import SseListeners  # bench/sse.py, beside this script

HERE = Path(__file__).resolve().parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DASHBOARD_TOKEN = "bench-dashboard-token-0123456789"
PG_ADMIN = os.environ.get(
    "CLERK_SYNC_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MARK_START, MARK_END = "<!-- results:start -->", "<!-- results:end -->"


# -- tools ---------------------------------------------------------------------------------------


def ensure_tools() -> None:
    """Install what the benchmark needs that a fresh machine lacks (wrk, FastAPI)."""
    if shutil.which("wrk") is None:
        print("installing wrk (Debian package)…", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    try:
        import fastapi  # noqa: F401
    except ImportError:
        print("installing fastapi (for the tutorial baseline)…", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "fastapi>=0.110,<1"], check=True
        )


# -- deliveries ----------------------------------------------------------------------------------


MIXES = ("user", "org")
Model = dict[str, dict[str, Any]]
"""The final state deliveries imply: table → id → what must be stored (see final_state())."""


def generate(path: Path, n: int, seed: int, mix: str = "user") -> tuple[Model, float]:
    """Write n signed deliveries of `mix`; return the final state they imply and the mean
    body size in bytes."""
    from clerk_sync.devtools import encode, sign_headers

    model: Model = {}
    events = (user_mix if mix == "user" else org_mix)(n, seed, model)
    size = 0
    with path.open("w") as out:
        for event in events:
            body = encode(event)
            size += len(body)
            h = sign_headers(SECRET, body)
            out.write(f"{h['svix-id']}\t{h['svix-timestamp']}\t{h['svix-signature']}\t")
            out.write(body.decode())
            out.write("\n")
    return model, size / max(n, 1)


def user_mix(n: int, seed: int, model: Model) -> Iterator[dict[str, Any]]:
    """60% user.created, 30% user.updated of a live user, 10% user.deleted."""
    from clerk_sync.devtools import deleted_user_event, user_event

    rng = random.Random(seed)
    live: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    clock = int(time.time() * 1000) - n
    for i in range(n):
        clock += 1
        roll = rng.random()
        if roll < 0.6 or len(order) < 10:
            user = _bench_user(i, clock)
            user["external_accounts"] = [_google_account(user, clock)]
            live[user["id"]] = user
            order.append(user["id"])
            yield user_event("user.created", user)
        elif roll < 0.9:
            user = live[order[rng.randrange(len(order))]]
            user = {**user, "first_name": f"Renamed{i}", "updated_at": clock}
            live[user["id"]] = user
            yield user_event("user.updated", user)
        else:
            victim = order.pop(rng.randrange(len(order)))
            del live[victim]
            yield deleted_user_event(victim, timestamp=clock)
    model["users"] = {uid: {"updated_at": u["updated_at"]} for uid, u in live.items()}


def _bench_user(i: int, clock: int, *, extra_email: bool = True) -> dict[str, Any]:
    from clerk_sync.devtools import user_object

    return user_object(
        email=f"user{i}@example.com",
        first_name=f"First{i}",
        last_name="Bench",
        username=f"user{i}",
        created_at=clock,
        updated_at=clock,
        extra_emails=(f"old{i}@example.net",) if extra_email else (),
        public_metadata={"plan": "pro", "seats": i % 50, "team": f"team-{i % 97}"},
        unsafe_metadata={"theme": "dark", "onboarded": True},
    )


ORG_WEIGHTS = (
    ("organization.created", 0.12),
    ("organization.updated", 0.08),
    ("organizationMembership.created", 0.25),
    ("organizationMembership.updated", 0.10),
    ("organizationMembership.deleted", 0.10),
    ("session.created", 0.22),
    ("session.ended", 0.13),
)
"""The organization mix; an action with nothing to act on yet becomes the one creating it."""


def org_mix(n: int, seed: int, model: Model) -> Iterator[dict[str, Any]]:
    """Organizations, memberships between the mix's users and organizations (the organization
    embedded whole, as Clerk sends it) and sessions (the full user embedded). No user or
    organization is deleted, so every membership and session is written; a membership delete
    carries the full membership with `updated_at` not bumped, as Clerk's does."""
    from clerk_sync.devtools import envelope, membership_object, session_object

    rng = random.Random(seed)
    kinds, weights = zip(*ORG_WEIGHTS, strict=True)
    orgs: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    members: dict[str, dict[str, Any]] = {}  # live memberships by id
    pairs: set[tuple[str, str]] = set()  # (organization id, user id) of live memberships
    active: dict[str, dict[str, Any]] = {}  # active sessions by id
    ended: dict[str, dict[str, Any]] = {}
    clock = int(time.time() * 1000) - n
    for i in range(n):
        clock += 1
        action = rng.choices(kinds, weights)[0]
        if action.startswith("organizationMembership.") and (not orgs or not users):
            action = "organization.created" if not orgs else "session.created"
        if action == "organizationMembership.created" and len(pairs) >= len(orgs) * len(users):
            action = "organization.created"
        if action in ("organizationMembership.updated", "organizationMembership.deleted") and (
            not members
        ):
            action = "organizationMembership.created"
        if action == "organization.updated" and not orgs:
            action = "organization.created"
        if action == "session.ended" and not active:
            action = "session.created"

        if action == "organization.created":
            org = _bench_org(i, clock)
            orgs[org["id"]] = org
            yield envelope(action, org, clock)
        elif action == "organization.updated":
            org = orgs[rng.choice(list(orgs))]
            org = {**org, "name": f"Org {i} Renamed", "members_count": rng.randrange(1, 50),
                   "updated_at": clock}  # fmt: skip
            orgs[org["id"]] = org
            yield envelope(action, org, clock)
        elif action == "organizationMembership.created":
            while True:
                org_id, user_id = rng.choice(list(orgs)), rng.choice(list(users))
                if (org_id, user_id) not in pairs:
                    break
            role = "org:admin" if rng.random() < 0.2 else "org:member"
            member = membership_object(organization=orgs[org_id], user=users[user_id],
                                       role=role, created_at=clock)  # fmt: skip
            member["public_metadata"] = {"department": f"dept-{i % 13}", "cost_centre": i % 7}
            members[member["id"]] = member
            pairs.add((org_id, user_id))
            yield envelope(action, member, clock)
        elif action == "organizationMembership.updated":
            old = members[rng.choice(list(members))]
            role = "org:member" if old["role"] == "org:admin" else "org:admin"
            org_id = old["organization"]["id"]
            member = membership_object(
                organization=orgs[org_id], user=users[old["public_user_data"]["user_id"]],
                membership_id=old["id"], role=role, created_at=old["created_at"],
                updated_at=clock,
            )  # fmt: skip
            member["public_metadata"] = old["public_metadata"]
            members[member["id"]] = member
            yield envelope(action, member, clock)
        elif action == "organizationMembership.deleted":
            member = members.pop(rng.choice(list(members)))
            pairs.discard((member["organization"]["id"], member["public_user_data"]["user_id"]))
            member = {**member, "organization": orgs[member["organization"]["id"]]}
            yield envelope(action, member, clock)
        elif action == "session.created":
            if not users or rng.random() < 0.4:
                user = _bench_user(i, clock, extra_email=False)
                users[user["id"]] = user
            else:
                user = users[rng.choice(list(users))]
            session = session_object(user=user, created_at=clock)
            active[session["id"]] = session
            yield envelope(action, session, clock)
        else:  # session.ended
            session = active.pop(rng.choice(list(active)))
            session = {**session, "status": "ended", "updated_at": clock,
                       "user": users[session["user_id"]]}  # fmt: skip
            ended[session["id"]] = session
            yield envelope(action, session, clock)

    model["organizations"] = {
        o["id"]: {"name": o["name"], "updated_at": o["updated_at"]} for o in orgs.values()
    }
    model["organization_memberships"] = {
        m["id"]: {
            "organization_id": m["organization"]["id"],
            "user_id": m["public_user_data"]["user_id"],
            "role": m["role"],
            "updated_at": m["updated_at"],
        }
        for m in members.values()
    }
    model["sessions"] = {
        s["id"]: {"user_id": s["user_id"], "status": s["status"], "updated_at": s["updated_at"]}
        for s in (*active.values(), *ended.values())
    }
    model["users"] = {u["id"]: {"updated_at": u["updated_at"]} for u in users.values()}


def _bench_org(i: int, clock: int) -> dict[str, Any]:
    """An organization with the metadata a B2B application keeps on it (~1.4 KB as an event;
    a membership event embeds it whole)."""
    from clerk_sync.devtools import new_id, organization_object

    org = organization_object(
        name=f"Org {i} Bench", slug=f"org-{i}-bench", created_by=new_id("user"),
        members_count=1 + i % 40, created_at=clock, updated_at=clock,
        public_metadata={
            "plan": "enterprise" if i % 5 == 0 else "team", "seats": 5 + i % 200,
            "region": ("eu-west-1", "us-east-1", "ap-southeast-2")[i % 3],
            "features": ["sso", "audit_log", "scim", "custom_roles", "api_access",
                         "priority_support", "data_export", "ip_allowlist"][: 3 + i % 6],
            "limits": {"api_requests_per_minute": 600, "storage_gb": 50 + i % 450,
                       "projects": 25, "environments": 3},
            "billing": {"customer": f"cus_{i:014d}", "country": "GB",
                        "vat_number": f"GB{100000000 + i}", "interval": "yearly",
                        "renews_at": clock + 365 * 86_400_000},
            "integrations": {"slack": {"team": f"T{i:010d}", "channel": "#clerk-alerts"},
                             "github": {"org": f"org-{i}-bench", "installation": 40_000 + i}},
        },
    )  # fmt: skip
    org["private_metadata"] = {
        "crm_account": f"https://crm.example.com/accounts/{i:08d}",
        "account_manager": f"manager{i % 11}@example.com",
        "notes": "Renewal discussed in Q3; keep an eye on seat usage before the true-up.",
        "onboarding": {"completed": True, "completed_at": clock, "checklist_version": 4},
    }
    return org


def _google_account(user: dict[str, Any], clock: int) -> dict[str, Any]:
    return {
        "object": "external_account",
        "id": "eac_" + user["id"][5:],
        "provider": "oauth_google",
        "identification_id": "idn_" + user["id"][5:],
        "provider_user_id": str(clock * 7),
        "approved_scopes": "email https://www.googleapis.com/auth/userinfo.email openid profile",
        "email_address": user["email_addresses"][-1]["email_address"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "avatar_url": "https://lh3.googleusercontent.com/a/EXAMPLE=s1000-c",
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoicHJveHkiLCJzcmMiOiJleGFtcGxlIn0",
        "username": None,
        "phone_number": None,
        "public_metadata": {},
        "label": None,
        "created_at": clock,
        "updated_at": clock,
        "verification": {
            "object": "verification_oauth",
            "status": "verified",
            "strategy": "oauth_google",
            "attempts": None,
            "expire_at": clock,
        },
    }


# -- databases -----------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database URL of `kind` (sqlite file, or a new PostgreSQL database)."""
    if kind == "sqlite":
        path = workdir / f"bench-{secrets.token_hex(4)}.db"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    name = f"clerk_sync_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def final_state(url: str, model: Model, *, logged: int | None = None) -> int:
    """How many rows differ from `model` (missing, extra or with other values), plus how many
    deliveries are not in the event log or are there as `failed` when `logged` (the number
    sent) is given. 0 is the only correct answer for clerk-sync."""
    from sqlalchemy import create_engine, text

    from clerk_sync.config import normalize_database_url

    engine = create_engine(normalize_database_url(url))
    wrong = 0
    try:
        with engine.connect() as conn:
            for table, expected in model.items():
                columns = sorted({c for row in expected.values() for c in row} or {"updated_at"})
                rows = conn.execute(
                    text(
                        f"SELECT id, {', '.join(columns)} FROM {table} "
                        "WHERE id NOT LIKE 'user_prefill%'"
                    )
                )
                got = {r[0]: dict(zip(columns, r[1:], strict=True)) for r in rows}
                wrong += sum(
                    1 for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)
                )
            if logged is not None:
                recorded, failed = conn.execute(
                    text(
                        "SELECT count(*), coalesce(sum(CASE WHEN status = 'failed' THEN 1 "
                        "ELSE 0 END), 0) FROM events"
                    )
                ).one()
                wrong += abs(logged - recorded) + failed
    finally:
        engine.dispose()
    return wrong


def prefill(url: str, rows: int) -> None:
    """Put `rows` users in the table first (the large-table run)."""
    from clerk_sync.store import make_engine, upgrade

    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
            INSERT INTO users (id, email, first_name, last_name, username, image_url,
                public_metadata, unsafe_metadata, created_at, updated_at, banned, locked, data,
                sync_version, synced_at)
            SELECT 'user_prefill' || printf('%015d', i), 'pre' || i || '@example.com', 'Pre',
                'Filled', 'pre' || i, 'https://img.clerk.com/x', '{{"plan":"free"}}', '{{}}',
                i, i, 0, 0,
                json_object('id', 'user_prefill' || printf('%015d', i), 'object', 'user',
                    'first_name', 'Pre', 'last_name', 'Filled',
                    'email_addresses', json_array(json_object('email_address',
                        'pre' || i || '@example.com', 'id', 'idn_' || i)),
                    'public_metadata', json_object('plan', 'free'), 'updated_at', i),
                i * 4 + 1, i
            FROM n
            """
        )
    engine.dispose()


# -- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def rss_mb(self) -> float:
        """RSS of the server and its children (clerk-sync's writer process), in MB."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
        return total or float("nan")

    def written_bytes(self) -> int:
        """Bytes the server's children (clerk-sync's writer process) have passed to write()
        so far (`wchar` in /proc): on SQLite the WAL, the checkpoints into the database file and
        the answers on the pipe (~100 B a delivery)."""
        total = 0
        for pid in _children(self.proc.pid):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                    if line.startswith("wchar:"):
                        total += int(line.split()[1])
        return total

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


SERVE_ENV: dict[str, str] = {}
"""Extra settings for (a), from --serve-env (for experiments; the report says so)."""


def start(target: str, url: str | None, workdir: Path, admin_token: str | None = None) -> Server:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CLERK_WEBHOOK_SECRET", "ADMIN_TOKEN")
    }
    env["CLERK_WEBHOOK_SECRET"] = SECRET
    if url:
        env["DATABASE_URL"] = url
    if target == "clerk-sync":
        env.update(SERVE_ENV)
        if admin_token:
            env["ADMIN_TOKEN"] = admin_token
        cmd = [
            sys.executable,
            "-c",
            "from clerk_sync.cli import main; main()",
            "serve",
            "--port",
            str(port),
        ]
    else:
        cmd = [sys.executable, str(HERE / "targets" / f"{target}.py"), "--port", str(port)]
    log = workdir / f"{target}-{port}.log"
    proc = subprocess.Popen(
        cmd, env=env, cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{target} exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return Server(proc, port, log)
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{target} did not start: {log.read_text()[-2000:]}")


class IdleHolder(threading.Thread):
    """Holds `count` TCP connections to the server open that never send a byte; one the server
    closes (keep-alive timeout, or to make room at its connection cap) is opened again at once,
    as a client that wants them kept open would."""

    def __init__(self, port: int, count: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.count = count
        self.reopened = 0
        self._halt = threading.Event()
        self._selector = selectors.DefaultSelector()

    def _connect(self) -> None:
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect(("127.0.0.1", self.port))
        self._selector.register(sock, selectors.EVENT_READ)

    def run(self) -> None:
        for _ in range(self.count):
            self._connect()
        while not self._halt.is_set():
            for key, _ in self._selector.select(0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    if sock.recv(4096):
                        continue  # an answer to nothing (a 503 at the cap): wait for the close
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                self._selector.unregister(sock)
                sock.close()
                self.reopened += 1
                self._connect()
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _room_for_idle(count: int) -> None:
    """This process holds `count` sockets beside wrk's: raise its soft descriptor limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard < 0 else min(want, hard), hard))


# -- load ----------------------------------------------------------------------------------------


@dataclass
class Result:
    target: str
    db: str
    connections: int
    deliveries: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mb: float
    wrong: int | None = None
    """Rows that differ from the deliveries' model, plus deliveries not logged (None: not
    checked, for (b))."""
    mix: str = "user"
    body_bytes: float = 0.0
    """Mean size of a delivery's body."""
    extra: dict[str, Any] = field(default_factory=dict)


def drive(server: Server, tsv: Path, connections: int, workdir: Path) -> dict[str, float]:
    threads = min(2, connections)
    done = Path(tempfile.mkdtemp(dir=workdir))
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        "3600s",
        "--timeout",
        "30s",
        "-s",
        str(HERE / "loadgen.lua"),
        f"http://127.0.0.1:{server.port}",
        "--",
        str(threads),
        str(tsv),
        str(done),
    ]
    wrk = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 1800
    while len(list(done.iterdir())) < threads and wrk.poll() is None:
        if time.monotonic() > deadline or server.proc.poll() is not None:
            break
        time.sleep(0.05)
    wrk.send_signal(signal.SIGINT)
    out, _ = wrk.communicate(timeout=60)
    shutil.rmtree(done, ignore_errors=True)
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    fields = dict(item.split("=") for item in line.split()[1:])
    return {k: float(v) for k, v in fields.items()}


def run_once(
    target: str,
    db: str,
    connections: int,
    n: int,
    workdir: Path,
    seed: int,
    prefill_rows: int = 0,
    mix: str = "user",
    idle: int = 0,
    sse: int | None = None,
) -> Result:
    """One run; `idle`: that many idle connections held open beside the load; `sse`: that many
    dashboard live-feed subscribers (with `ADMIN_TOKEN` set, also for 0; None: no token)."""
    tsv = workdir / "deliveries.tsv"
    extra: dict[str, Any] = {}
    with database(db if target != "verify_only" else "sqlite", workdir) as url:
        if prefill_rows:
            prefill(url, prefill_rows)
        expected, body_bytes = generate(tsv, n, seed, mix)
        token = DASHBOARD_TOKEN if sse is not None else None
        server = start(target, None if target == "verify_only" else url, workdir, token)
        holder = IdleHolder(server.port, idle) if idle else None
        listeners = SseListeners(server.port, sse, DASHBOARD_TOKEN) if sse else None
        try:
            if holder:
                _room_for_idle(idle)
                holder.start()
                time.sleep(1.0)  # let the server accept them all before the load starts
            if listeners:
                listeners.start()
                if not listeners.ready.wait(30) or listeners.error:
                    raise RuntimeError(f"live-feed subscribers did not start: {listeners.error}")
            written = server.written_bytes()
            figures = drive(server, tsv, connections, workdir)
            rss = server.rss_mb()
            if target == "clerk-sync" and db == "sqlite":
                extra["written_per_delivery"] = (server.written_bytes() - written) / n
        finally:
            if holder:
                holder.stop()
                extra |= {"idle": idle, "reopened": holder.reopened}
            if listeners:
                time.sleep(0.5)  # the feed's last poll of the run
                listeners.stop()
                extra |= {"sse": sse, "updates": min(listeners.updates), "error": listeners.error}
            server.stop()
        wrong = None
        if target != "verify_only":
            # The tutorial keeps no event log: only its users are compared.
            wrong = final_state(url, expected, logged=n if target == "clerk-sync" else None)
    errors = int(figures["errors"] + figures["socket_errors"])
    return Result(
        target,
        db if target != "verify_only" else "-",
        connections,
        n,
        figures["responses"] / figures["seconds"],
        figures["p50_us"] / 1000,
        figures["p99_us"] / 1000,
        errors,
        rss,
        wrong,
        mix,
        body_bytes,
        extra,
    )


def beside_the_load(
    what: str, count: int, rounds: int, deliveries: int, workdir: Path
) -> tuple[list[str], list[Result]]:
    """(a) at 32 connections on SQLite, alternately without and with `count` of `what` beside
    the load — `idle` connections held open, or `sse` dashboards' live feeds (with
    `ADMIN_TOKEN` set in both arms) — in ABBA order, so neither arm always meets the warmer
    machine: the report's lines, and the runs."""
    arm = ARMS[what]
    runs: dict[int, list[Result]] = {0: [], count: []}
    for round_ in range(rounds):
        order = list(runs.items()) if round_ % 2 == 0 else list(reversed(runs.items()))
        for n, done in order:
            seed = arm.seed + 2 * round_ + (n > 0)
            r = run_once("clerk-sync", "sqlite", 32, deliveries, workdir, seed, **arm.options(n))
            done.append(r)
            print(
                f"round {round_ + 1}: (a) clerk-sync serve {what}={n:<5} sqlite c=32   "
                f"{r.rps:8,.0f}/s p99 {r.p99_ms:6.1f} ms errors {r.errors} wrong {r.wrong} "
                f"{arm.column} {r.extra.get(arm.extra, '-')}",
                flush=True,
            )
    lines = [
        "",
        f"{arm.heading}, (a) clerk-sync serve, SQLite, 32 loaded connections, median of "
        f"{rounds} alternating round(s):",
        "",
        f"| {arm.label} | deliveries/s | vs none | p50 ms | p99 ms | errors | wrong rows | "
        f"RSS MB | {arm.column} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = statistics.median(r.rps for r in runs[0])
    for n, done in runs.items():
        rps = statistics.median(r.rps for r in done)
        lines.append(
            f"| {n:,} | {rps:,.0f} | {rps / base:.2f}× | "
            f"{statistics.median(r.p50_ms for r in done):.1f} | "
            f"{statistics.median(r.p99_ms for r in done):.1f} | {sum(r.errors for r in done)} | "
            f"{max(r.wrong or 0 for r in done)} | {max(r.rss_mb for r in done):.0f} | "
            f"{arm.summary(done) if n else '-'} |"
        )
    return lines, [r for done in runs.values() for r in done]


@dataclass(frozen=True)
class Arm:
    """What one beside-the-load comparison puts beside the load, and how it reports it."""

    seed: int
    heading: str
    label: str
    column: str
    extra: str
    options: Any
    """count → `run_once` keyword arguments (also for 0: the arm without)."""
    summary: Any
    """the arm's runs → its last column."""


ARMS = {
    "idle": Arm(
        700,
        "Idle connections beside the load",
        "idle connections held open",
        "idle ones reopened",
        "reopened",
        lambda n: {"idle": n},
        lambda done: f"{sum(r.extra.get('reopened', 0) for r in done):,}",
    ),
    "sse": Arm(
        800,
        "Dashboards beside the load, ADMIN_TOKEN set",
        "live-feed subscribers (SSE)",
        "feed updates each (fewest)",
        "updates",
        lambda n: {"sse": n},
        lambda done: min(r.extra.get("updates", 0) for r in done),
    ),
}


# -- start-up ------------------------------------------------------------------------------------


STARTUP_TARGETS = {"clerk-sync --help": 0.3, "clerk-sync users list": 0.5}
"""Seconds, median wall time of a run (bench/README.md, "Start-up")."""
STARTUP_USERS = 5


def clerk_sync_script() -> list[str]:
    """The installed console script, as a user runs it (the one beside this interpreter)."""
    beside = Path(sys.executable).with_name("clerk-sync")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("clerk-sync")
    return [found] if found else [sys.executable, "-c", "from clerk_sync.cli import main; main()"]


def startup(runs: int, workdir: Path, extras: dict[str, float]) -> list[str]:
    """Median wall time of `runs` starts of `python -c pass`, `clerk-sync --help` and
    `clerk-sync users list` (a SQLite database with a few users, migrated beforehand), taken
    in turns after one untimed start of each; every start must exit 0."""
    from clerk_sync.devtools import encode, new_msg_id, user_event, user_object
    from clerk_sync.receiver import Delivery, Receiver
    from clerk_sync.store import make_engine, upgrade

    home = workdir / "startup"
    home.mkdir()  # the working directory: no .env of the checkout's is read
    url = f"sqlite:///{home / 'clerk_sync.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine)
        receiver = Receiver(engine)
        for n in range(STARTUP_USERS):
            user = user_object(user_id=f"user_startup{n:015d}", email=f"user{n}@example.com")
            receiver.receive(Delivery(new_msg_id(), encode(user_event("user.created", user))))
    finally:
        engine.dispose()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CLERK_WEBHOOK_SECRET", "ADMIN_TOKEN")
        # Bytecode caches as an installed package has them (pip writes them at install; a
        # clone's first run writes them): not compiling every module again on every start.
        and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["DATABASE_URL"] = url
    script = clerk_sync_script()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "clerk-sync --help": [*script, "--help"],
        "clerk-sync users list": [*script, "users", "list"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(runs + 1):
        for name, cmd in commands.items():
            began = time.perf_counter()
            done = subprocess.run(cmd, env=env, cwd=home, capture_output=True, check=False)
            took = time.perf_counter() - began
            if done.returncode != 0:
                raise RuntimeError(f"{name} exited {done.returncode}: {done.stderr.decode()}")
            if round_:  # the first round only warms the caches
                times[name].append(took)
    lines = [
        f"Start-up: median wall time of {runs} runs each, taken in turns (bench/README.md, "
        f'"Start-up"); `users list` reads a SQLite database of {STARTUP_USERS} users.',
        "",
        "| command | median s | runs s | target | |",
        "|---|---|---|---|---|",
    ]
    for name, runs_s in times.items():
        median = statistics.median(runs_s)
        goal = STARTUP_TARGETS.get(name)
        if goal is not None:
            extras[f"startup {name}"] = median
        verdict = (
            "–"
            if goal is None
            else f"met ({median / goal:.2f}× of target)"
            if median <= goal
            else f"**MISSED by {median - goal:.2f} s** ({median / goal:.2f}× of target)"
        )
        lines.append(
            f"| `{name}` | {median:.3f} | {' · '.join(f'{t:.3f}' for t in runs_s)} | "
            + (f"≤ {goal} s" if goal is not None else "–")
            + f" | {verdict} |"
        )
    return lines


# -- report --------------------------------------------------------------------------------------


NAMES = {
    "clerk-sync": "(a) clerk-sync serve",
    "verify_only": "(b) verify-only limit",
    "tutorial": "(c) tutorial baseline",
}


Key = tuple[str, str, int, str]
"""target, db, connections, mix"""


def median_by(results: list[Result]) -> dict[Key, Result]:
    groups: dict[Key, list[Result]] = {}
    for r in results:
        groups.setdefault((r.target, r.db, r.connections, r.mix), []).append(r)
    merged = {}
    for key, rs in groups.items():
        best = sorted(rs, key=lambda r: r.rps)[len(rs) // 2]
        merged[key] = Result(
            best.target,
            best.db,
            best.connections,
            best.deliveries,
            statistics.median(r.rps for r in rs),
            statistics.median(r.p50_ms for r in rs),
            statistics.median(r.p99_ms for r in rs),
            sum(r.errors for r in rs),
            max(r.rss_mb for r in rs),
            None if best.wrong is None else max(r.wrong or 0 for r in rs),
            best.mix,
            statistics.mean(r.body_bytes for r in rs),
        )
    return merged


def report(results: list[Result], extras: list[str], args: argparse.Namespace) -> str:
    table = median_by(results)
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        f", SQLite {_sqlite_version()}; {datetime.now(tz=UTC):%Y-%m-%d %H:%M} UTC.",
        f"Command: `python bench/run.py {' '.join(sys.argv[1:])}`; {args.deliveries} deliveries "
        f"per run, median of {args.rounds} alternating round(s).",
    ]
    users = sorted(
        ((k, r) for k, r in table.items() if r.mix == "user"),
        key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]),
    )
    if users:
        lines += [
            "",
            "User mix:",
            "",
            "| target | db | conns | deliveries/s | vs (b) | vs (c) | p50 ms | p99 ms | errors | "
            "RSS MB | wrong rows |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for (target, db, conns, _), r in users:
        limit = table.get(("verify_only", "-", conns, "user"))
        base = table.get(("tutorial", "sqlite", conns, "user"))
        lines.append(
            f"| {NAMES[target]} | {db} | {conns} | {r.rps:,.0f} | "
            + (f"{r.rps / limit.rps:.2f}× | " if limit else "– | ")
            + (f"{r.rps / base.rps:.1f}× | " if base else "– | ")
            + f"{r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} | {r.rss_mb:.0f} | "
            + f"{'–' if r.wrong is None else r.wrong} |"
        )
    lines += org_table(table)
    written = [
        (r.mix, r.connections, r.extra["written_per_delivery"])
        for r in results
        if "written_per_delivery" in r.extra
    ]
    if written:
        per_mix = {
            mix: statistics.median(w for m, _, w in written if m == mix) for mix, _, _ in written
        }
        lines += [
            "",
            "Written by the writer process per delivery on SQLite (WAL, checkpoints and its "
            "answers, /proc wchar), median over the runs: "
            + ", ".join(f"{mix} mix {w / 1024:,.1f} KiB" for mix, w in per_mix.items())
            + ".",
        ]
    lines += ["", *extras]
    return "\n".join(lines)


def org_table(table: dict[Key, Result]) -> list[str]:
    """The organization mix of (a) beside its user mix, run for run on the same database."""
    orgs = sorted(
        ((k, r) for k, r in table.items() if r.mix == "org"), key=lambda kv: (kv[0][2], kv[0][1])
    )
    if not orgs:
        return []
    lines = [
        "",
        "Organization mix, (a) clerk-sync serve (organizations, memberships, sessions; "
        "bench/README.md):",
        "",
        "| db | conns | user mix/s | org mix/s | org/user | user p99 ms | org p99 ms | "
        "org body B | errors | wrong rows |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (_, db, conns, _), r in orgs:
        u = table.get(("clerk-sync", db, conns, "user"))
        lines.append(
            f"| {db} | {conns} | "
            + (f"{u.rps:,.0f} | " if u else "– | ")
            + f"{r.rps:,.0f} | "
            + (f"{r.rps / u.rps:.2f}× | " if u else "– | ")
            + (f"{u.p99_ms:.1f} | " if u else "– | ")
            + f"{r.p99_ms:.1f} | {r.body_bytes:,.0f} | {r.errors} | {r.wrong} |"
        )
    return lines


def targets_check(results: list[Result], extras: dict[str, float]) -> list[str]:
    table = median_by(results)
    out = []

    def verdict(name: str, value: float, goal: float, higher: bool = True, unit: str = "") -> None:
        ok = value >= goal if higher else value <= goal
        by = value / goal if goal else float("nan")
        out.append(
            f"- {'met' if ok else 'MISSED'}: {name} = {value:.2f}{unit} "
            f"(target {'≥' if higher else '≤'} {goal}{unit}; {by:.2f}× of target)"
        )

    a, b, c = (
        table.get((t, d, 32, "user"))
        for t, d in (("clerk-sync", "sqlite"), ("verify_only", "-"), ("tutorial", "sqlite"))
    )
    if a and b:
        verdict("(a)/(b) throughput, SQLite, 32 conns", a.rps / b.rps, 0.45)
    if a and c:
        verdict("(a)/(c) throughput, SQLite, 32 conns", a.rps / c.rps, 8)
    if a:
        verdict("(a) p99 latency, SQLite, 32 conns", a.p99_ms, 15, higher=False, unit=" ms")
    pg = table.get(("clerk-sync", "postgresql", 32, "user"))
    if pg and b:
        verdict("(a)/(b) throughput, PostgreSQL, 32 conns", pg.rps / b.rps, 0.30)
    if pg:
        verdict("(a) p99 latency, PostgreSQL, 32 conns", pg.p99_ms, 25, higher=False, unit=" ms")
    for db, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        user, org = (table.get(("clerk-sync", db, 32, mix)) for mix in ("user", "org"))
        if user and org:
            # "within 15%" of the user mix: slower by at most 15% (faster is within too).
            verdict(f"org mix / user mix throughput, {name}, 32 conns", org.rps / user.rps, 0.85)
    if "big_ratio" in extras:
        verdict("throughput with 1,000,000 users / empty table", extras["big_ratio"], 0.8)
    if "rss_100k" in extras:
        verdict("RSS after 100,000 deliveries", extras["rss_100k"], 120, higher=False, unit=" MB")
    if "soak_growth" in extras:
        verdict("RSS growth over the soak", extras["soak_growth"], 5, higher=False, unit=" MB")
    for name, goal in STARTUP_TARGETS.items():
        if f"startup {name}" in extras:
            verdict(f"`{name}` start-up", extras[f"startup {name}"], goal, higher=False, unit=" s")
    wrong = sum((r.wrong or 0) for r in results if r.target == "clerk-sync")
    runs = [r for r in results if r.target == "clerk-sync"]
    mixes = " and ".join(m for m in MIXES if any(r.mix == m for r in runs))
    out.append(
        f"- {'met' if wrong == 0 else 'MISSED'}: clerk-sync final state equals the "
        f"deliveries' model and logs every delivery in every run ({len(runs)} run(s), "
        f"{mixes} mix; {wrong} wrong rows)"
    )
    return out


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def write_readme(text: str) -> None:
    readme = HERE / "README.md"
    content = readme.read_text()
    start, end = content.index(MARK_START), content.index(MARK_END)
    readme.write_text(content[: start + len(MARK_START)] + "\n" + text + "\n" + content[end:])


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: small, one round")
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", default="1,8,32,128")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--big-table",
        type=int,
        default=1_000_000,
        help="users to prefill for the large-table run (0 to skip)",
    )
    parser.add_argument(
        "--memory-deliveries",
        type=int,
        default=100_000,
        help="deliveries for the RSS run (0 to skip)",
    )
    parser.add_argument("--soak", type=int, default=300, help="soak seconds (0 to skip)")
    parser.add_argument(
        "--idle",
        type=int,
        default=1000,
        help="idle connections held open beside the load in the idle run (0 to skip)",
    )
    parser.add_argument(
        "--sse",
        type=int,
        default=20,
        help="dashboard live-feed subscribers beside the load in the dashboard run (0 to skip)",
    )
    parser.add_argument(
        "--startup",
        type=int,
        default=5,
        help="timed starts of each command in the start-up run (0 to skip)",
    )
    parser.add_argument(
        "--targets",
        default="verify_only,clerk-sync,tutorial",
        help="which of verify_only, clerk-sync, tutorial to run",
    )
    parser.add_argument(
        "--mix",
        default="user,org",
        help="the mixes (a) runs, alternately on each database: user, org or "
        "user,org; (b) and (c) always run the user mix",
    )
    parser.add_argument(
        "--serve-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for clerk-sync serve (experiments; default: none)",
    )
    parser.add_argument(
        "--write-readme", action="store_true", help="replace the results section of bench/README.md"
    )
    args = parser.parse_args()
    if args.quick:
        args.deliveries, args.rounds, args.connections = 400, 1, "8"
        args.big_table = args.memory_deliveries = args.soak = 0
    conns = [int(c) for c in args.connections.split(",")]
    targets = args.targets.split(",")
    mixes = [m for m in args.mix.split(",") if m]
    if not mixes or set(mixes) - set(MIXES):
        parser.error(f"--mix takes {', '.join(MIXES)} or both separated by a comma")
    SERVE_ENV.update(item.split("=", 1) for item in args.serve_env)
    ensure_tools()
    results: list[Result] = []
    extras: dict[str, float] = {}
    notes: list[str] = []
    beside_lines: list[str] = []
    beside_runs: list[Result] = []
    startup_lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="clerk-sync-bench-") as tmp:
        workdir = Path(tmp)
        if args.startup:  # first, on a machine no server of this run is loading yet
            startup_lines = [*startup(args.startup, workdir, extras), ""]
            print("\n".join(startup_lines), flush=True)
        seed = 0
        for round_ in range(args.rounds):
            for c in conns:
                for target in targets:
                    for mix in mixes if target == "clerk-sync" else ["user"]:
                        seed += 1
                        r = run_once(target, "sqlite", c, args.deliveries, workdir, seed, mix=mix)
                        results.append(r)
                        _progress(round_, r)
                if not args.no_postgres and "clerk-sync" in targets:
                    # --quick exercises the organization mix once, on SQLite.
                    for mix in [m for m in mixes if not (args.quick and m == "org")]:
                        seed += 1
                        r = run_once(
                            "clerk-sync", "postgresql", c, args.deliveries, workdir, seed, mix=mix
                        )
                        results.append(r)
                        _progress(round_, r)
        if args.big_table:
            empty = run_once("clerk-sync", "sqlite", 32, args.deliveries, workdir, 900)
            big = run_once(
                "clerk-sync",
                "sqlite",
                32,
                args.deliveries,
                workdir,
                901,
                prefill_rows=args.big_table,
            )
            extras["big_ratio"] = big.rps / empty.rps
            notes.append(
                f"Large table: {big.rps:,.0f}/s with {args.big_table:,} users vs "
                f"{empty.rps:,.0f}/s on an empty table ({extras['big_ratio']:.2f}×)."
            )
        if args.memory_deliveries:
            mem = run_once("clerk-sync", "sqlite", 32, args.memory_deliveries, workdir, 902)
            extras["rss_100k"] = mem.rss_mb
            notes.append(
                f"Memory: RSS {mem.rss_mb:.0f} MB after {args.memory_deliveries:,} "
                f"deliveries ({mem.rps:,.0f}/s, {mem.errors} errors, "
                f"{mem.wrong} wrong rows)."
            )
        if args.soak:
            notes.append(soak(args.soak, workdir, extras))
        for what, count in (("idle", args.idle), ("sse", args.sse)):
            if count and "clerk-sync" in targets:
                lines, runs = beside_the_load(what, count, args.rounds, args.deliveries, workdir)
                beside_lines += lines
                beside_runs += runs
    checks = targets_check(results, extras)
    text = report(results, [*startup_lines, *notes, *beside_lines, "", "Targets:", *checks], args)
    print("\n" + text)
    if args.write_readme:
        write_readme(text)
    if any(r.target == "clerk-sync" and (r.wrong or r.errors) for r in [*results, *beside_runs]):
        sys.exit(1)


def soak(seconds: int, workdir: Path, extras: dict[str, float]) -> str:
    """Serve chunks of deliveries for `seconds` to one long-lived server; sample RSS."""
    with database("sqlite", workdir) as url:
        server = start("clerk-sync", url, workdir)
        samples: list[float] = []
        sent = 0
        try:
            started = time.monotonic()
            chunk = 0
            while time.monotonic() - started < seconds:
                chunk += 1
                tsv = workdir / "soak.tsv"
                generate(tsv, 20_000, 1000 + chunk)
                drive(server, tsv, 32, workdir)
                sent += 20_000
                samples.append(server.rss_mb())
        finally:
            server.stop()
    growth = samples[-1] - samples[0] if len(samples) > 1 else 0.0
    extras["soak_growth"] = growth
    return (
        f"Soak: {sent:,} deliveries over {seconds} s on one server; RSS after each 20,000: "
        f"{', '.join(f'{s:.0f}' for s in samples)} MB (growth {growth:+.1f} MB)."
    )


def _progress(round_: int, r: Result) -> None:
    written = r.extra.get("written_per_delivery")
    print(
        f"round {round_ + 1}: {NAMES[r.target]:<24} {r.mix:<4} {r.db:<10} c={r.connections:<4} "
        f"{r.rps:8,.0f}/s p50 {r.p50_ms:6.1f} ms p99 {r.p99_ms:6.1f} ms errors {r.errors} "
        f"RSS {r.rss_mb:5.0f} MB wrong {r.wrong} ({r.body_bytes:,.0f} B/delivery"
        + (f", writer wrote {written:,.0f} B/delivery" if written is not None else "")
        + ")",
        flush=True,
    )


if __name__ == "__main__":
    main()
