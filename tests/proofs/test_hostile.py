"""Proof: hostile input never gets a 5xx, and nothing is written without a valid signature.

Two fuzzers drive the real ASGI app (lifespan, guard, verifier, group committer, a real SQLite
file) with raw ASGI messages, so header bytes reach it exactly as generated, without an HTTP
client's own checks in between:

* arbitrary requests: any headers (the svix and webhook names among random ones, with values
  from plausible to binary), any body, sent in any chunks;
* forgeries: a delivery signed now with the real secret, then altered in one of the ways an
  attacker or a broken proxy alters it (:data:`FORGERIES`).

Every answer must be a 4xx with a JSON ``error``, and the event log must not grow. The named
forgeries of the issue are then replayed against a real ``clerk-sync serve`` on loopback, each
after a control delivery that the same server accepts.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from clerk_sync.devtools import encode, new_msg_id, sign_headers, user_event, user_object
from clerk_sync.store import make_engine
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import OTHER_SECRET, SECRET, migrated_sqlite
from tests.e2e.server import ServerProcess
from tests.helpers.tables import events_table
from tests.proofs.hypothesis_settings import proof_settings
from tests.web.conftest import make_settings

TOLERANCE = 300
FUZZ = proof_settings(600)
SVIX_NAMES = [
    b"svix-id",
    b"svix-timestamp",
    b"svix-signature",
    b"webhook-id",
    b"webhook-timestamp",
    b"webhook-signature",
    b"content-length",
    b"content-type",
    b"transfer-encoding",
    b"x-forwarded-for",
]


# --- the app, driven with raw ASGI messages ----------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


async def call_raw(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> Answer:
    """One POST to the webhook path, as a server would hand it to the app."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": WEBHOOK_PATH,
        "raw_path": WEBHOOK_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("203.0.113.5", 40000),
        "server": ("127.0.0.1", 8000),
    }
    pending = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks or [b""])
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, f"the app sent {len(starts)} response starts: {sent}"
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(starts[0]["status"], dict(starts[0].get("headers", [])), body)


@pytest.fixture(scope="module")
def db_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_sqlite(tmp_path_factory.mktemp("hostile") / "clerk_sync.db")


@pytest.fixture(scope="module")
def app_client(db_file: str) -> Iterator[TestClient]:
    """The app as ``serve`` builds it, except that failed verifications spend no budget (the
    fuzzer would otherwise be answered 429 after 60 tries, proving nothing about the parser)."""
    app = create_app(make_settings(db_file, rate_limit_webhook_rejected=""))
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def log_rows(db_file: str) -> Iterator[Callable[[], int]]:
    engine: Engine = make_engine(db_file)

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())

    yield count
    engine.dispose()


def post_raw(client: TestClient, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> Answer:
    assert client.portal is not None
    return client.portal.call(call_raw, client.app, headers, chunks)


def assert_refused(answer: Answer) -> None:
    """A 4xx that says why, in the endpoint's JSON shape: never a 5xx, never a 2xx."""
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert orjson.loads(answer.body)["error"], answer.body[:300]


# --- fuzz 1: anything at all -------------------------------------------------------------------

header_values = st.one_of(
    st.binary(max_size=120),
    st.text(st.characters(codec="latin-1"), max_size=80).map(lambda t: t.encode("latin-1")),
    st.integers(-(10**20), 10**20).map(lambda n: str(n).encode()),
    st.builds(
        lambda v, b: f"{v},{b}".encode(),
        st.sampled_from(["v1", "v1a", "v2", "", "V1"]),
        st.text("ABCDEFabcdef0123456789+/=", max_size=60),
    ),
    st.just(b"msg_" + b"x" * 27),
    st.sampled_from([b"", b" ", b"\x00", b"\xff\xfe", "²".encode("latin-1"), b"1e9", b"0x10"]),
)
header_names = st.one_of(
    st.sampled_from(SVIX_NAMES), st.binary(min_size=1, max_size=20).map(bytes.lower)
)
bodies = st.one_of(
    st.binary(max_size=2_000),
    st.just(encode(user_event("user.created", user_object()))),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ).map(orjson.dumps),
)


@FUZZ
@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=12),
    body=bodies,
    cuts=st.lists(st.integers(0, 2_000), max_size=3),
)
# Found by this fuzzer: "²".isdigit() is True, and int("²") raised (500).
@example(headers=[(b"content-length", "²".encode("latin-1"))], body=b"{}", cuts=[])
def test_any_request_is_refused_with_a_4xx_and_writes_nothing(
    app_client: TestClient,
    log_rows: Callable[[], int],
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    cuts: list[int],
) -> None:
    before = log_rows()
    edges = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    chunks = [body[a:b] for a, b in itertools.pairwise(edges)] or [b""]
    assert_refused(post_raw(app_client, headers, chunks))
    assert log_rows() == before


# --- fuzz 2: forgeries of a delivery signed now ------------------------------------------------


@dataclass(frozen=True)
class Signed:
    body: bytes
    headers: dict[str, str]


def fresh(*, secret: str = SECRET, timestamp: int | None = None) -> Signed:
    body = encode(user_event("user.created", user_object()))
    return Signed(body, sign_headers(secret, body, timestamp=timestamp))


def flip_bit(data: bytes, position: int) -> bytes:
    n = position % (len(data) * 8)
    out = bytearray(data)
    out[n // 8] ^= 1 << (n % 8)
    return bytes(out)


def _with(signed: Signed, body: bytes | None = None, **headers: str) -> Signed:
    new = dict(signed.headers)
    new.update({name.replace("_", "-"): value for name, value in headers.items()})
    return Signed(signed.body if body is None else body, new)


def _signature_bytes(signed: Signed) -> bytes:
    return base64.b64decode(signed.headers["svix-signature"].partition(",")[2])


Forgery = Callable[[int], Signed]
FORGERIES: dict[str, Forgery] = {
    "wrong secret": lambda _: fresh(secret=OTHER_SECRET),
    "flipped bit in the body": lambda n: (s := fresh()) and _with(s, flip_bit(s.body, n)),
    "flipped bit in the signature": lambda n: (
        (s := fresh())
        and _with(
            s, svix_signature="v1," + base64.b64encode(flip_bit(_signature_bytes(s), n)).decode()
        )
    ),
    "v1 prefix missing": lambda _: (
        (s := fresh()) and _with(s, svix_signature=s.headers["svix-signature"].partition(",")[2])
    ),
    "signature under another version": lambda n: (
        (s := fresh())
        and _with(
            s,
            svix_signature=["v1a", "v2", "v0", "V1"][n % 4]
            + ","
            + s.headers["svix-signature"].partition(",")[2],
        )
    ),
    "signature for another svix id": lambda _: _with(fresh(), svix_id=new_msg_id()),
    "signature for another timestamp": lambda n: (
        (s := fresh())
        and _with(s, svix_timestamp=str(int(s.headers["svix-timestamp"]) + 1 + n % 200))
    ),
    "expired timestamp": lambda n: fresh(timestamp=int(time.time()) - TOLERANCE - 5 - n % 10**6),
    "future timestamp": lambda n: fresh(timestamp=int(time.time()) + TOLERANCE + 5 + n % 10**6),
    "replay with a new id but the old signature": lambda _: _with(fresh(), svix_id=new_msg_id()),
    "body of another delivery": lambda _: _with(fresh(), fresh().body),
    "body truncated": lambda n: (s := fresh()) and _with(s, s.body[: n % len(s.body)]),
    "trailing newline added": lambda _: (s := fresh()) and _with(s, s.body + b"\n"),
    "body re-serialized": lambda _: (
        (s := fresh()) and _with(s, orjson.dumps(orjson.loads(s.body), option=orjson.OPT_INDENT_2))
    ),
}
"""Name → a forgery made from a fresh, valid delivery (the int picks where to alter it)."""


def as_asgi(signed: Signed) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), v.encode()) for k, v in signed.headers.items()] + [
        (b"content-type", b"application/json")
    ]


@FUZZ
@given(name=st.sampled_from(sorted(FORGERIES)), where=st.integers(0, 10**9))
def test_every_forgery_of_a_valid_delivery_is_refused(
    app_client: TestClient, log_rows: Callable[[], int], name: str, where: int
) -> None:
    before = log_rows()
    forged = FORGERIES[name](where)
    answer = post_raw(app_client, as_asgi(forged), [forged.body])
    assert_refused(answer)
    assert answer.status in (400, 401), (name, answer.status)
    assert log_rows() == before, name
    # Control: the same app writes a genuine delivery, so "nothing written" meant something.
    genuine = fresh()
    assert post_raw(app_client, as_asgi(genuine), [genuine.body]).status == 200
    assert log_rows() == before + 1


# --- the named forgeries against a real server ------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    work: Path = tmp_path_factory.mktemp("hostile-serve")
    db = f"sqlite:///{work / 'clerk_sync.db'}"
    with ServerProcess(database_url=db, secret=SECRET, workdir=work / "run") as proc:
        yield proc


EXPECTED_CODE = {
    "expired timestamp": "timestamp_out_of_tolerance",
    "future timestamp": "timestamp_out_of_tolerance",
    "v1 prefix missing": "malformed_header",
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_named_forgery_is_refused_by_a_real_server(server: ServerProcess, name: str) -> None:
    observer = make_engine(server.env["DATABASE_URL"])
    try:

        def rows() -> int:
            with observer.connect() as conn:
                query = select(func.count()).select_from(events_table)
                return int(conn.execute(query).scalar_one())

        genuine = fresh()
        assert server.post(genuine.body, genuine.headers).status_code == 200
        before = rows()
        forged = FORGERIES[name](12345)
        answer = server.post(forged.body, forged.headers)
        assert answer.status_code in (400, 401), answer.text
        assert answer.json()["error"] == EXPECTED_CODE.get(name, "signature_mismatch"), answer.text
        assert rows() == before
    finally:
        observer.dispose()
