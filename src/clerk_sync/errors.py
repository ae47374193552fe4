"""Every error clerk-sync raises on purpose, with its stable code, HTTP status and exit code.

The web layer and the CLI render any :class:`ClerkSyncError` generically: the HTTP answer is
``{"error": code, "detail": detail}`` with ``http_status``; the CLI prints the detail and exits
with ``exit_code``. The ``code`` is also the anchor of the README's troubleshooting table, so
codes never change once released.

::

    ClerkSyncError
    ├── ConfigError                  config_invalid         exit 2   (startup refuses)
    ├── SchemaError                  schema_outdated /      exit 3   (run `clerk-sync db upgrade`;
    │                                table_taken /                   or set TABLE_PREFIX)
    │                                database_missing
    ├── RejectedDelivery             (nothing is recorded for these; sent before any write)
    │   ├── MissingHeader            missing_header         400
    │   ├── MalformedHeader          malformed_header       400
    │   ├── UnreadableBody           body_not_utf8          400
    │   ├── PayloadTooLarge          payload_too_large      413
    │   ├── TimestampOutOfTolerance  timestamp_out_of_tolerance 401
    │   └── SignatureMismatch        signature_mismatch     401
    ├── InvalidPayload               payload_not_json /     422  (authentic but can never apply:
    │                                payload_invalid             recorded as `failed`, Svix told to
    │                                                            stop retrying)
    ├── StoreUnavailable             store_unavailable      503 / exit 4  (transient: Svix retries)
    │   ├── DatabaseDirectoryMissing database_directory_missing  exit 5   (the cause and the
    │   ├── DatabaseNotWritable      database_not_writable       exit 6    fix, one line: see
    │   ├── DatabaseUnreachable      database_unreachable        exit 7    store.engine.
    │   ├── DatabaseUnknown          database_unknown            exit 8    store_error, the one
    │   ├── DatabaseAuthFailed       database_auth_failed        exit 9    place a driver's
    │   └── DatabaseLocked           database_locked             exit 10   error is read)
    ├── PortInUse                    port_in_use            exit 11  (`serve --port` is taken)
    ├── Refused                      (the guard: before the request is parsed)
    │   ├── SourceNotAllowed         source_not_allowed     403
    │   └── RateLimited              rate_limited           429  (with Retry-After)
    ├── ServerUnreachable            server_unreachable     exit 1   (devtools: no HTTP answer)
    ├── ClerkApiError                clerk_api_error        exit 1   (Backend API, after retries;
    │   ├── ClerkKeyRefused          clerk_key_refused      exit 2    defined in clerk_http)
    │   ├── ClerkApiUnreachable      clerk_api_unreachable  exit 1
    │   ├── UnexpectedResponse       clerk_api_unexpected   exit 1   (a 2xx not of Clerk's shape)
    │   └── NotInClerk               not_in_clerk           exit 1   (404 for one object)
    ├── ApiError                     (read API)
    │   ├── Unauthorized             unauthorized           401
    │   ├── NotFound                 not_found              404
    │   ├── InvalidParameter         invalid_parameter      400
    │   └── PayloadGone              payload_gone           409  (replay: the body was erased or
    │                                                            pruned)
    └── EdgeLimit                    server_busy /          503  (web.edge, before the app: with
                                     request_timeout /      408   Retry-After / slow client /
                                     headers_too_large      431   headers over 64 KiB)
"""

from __future__ import annotations


class ClerkSyncError(Exception):
    """Root of the tree: carries what the web layer and the CLI need to answer."""

    code: str = "internal_error"
    http_status: int = 500
    exit_code: int = 1

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def to_dict(self) -> dict[str, str]:
        """The JSON error body: the stable code and one sentence saying what to check."""
        return {"error": self.code, "detail": self.detail}


class ConfigError(ClerkSyncError):
    """A setting is missing or malformed; raised at startup, never mid-request."""

    code = "config_invalid"
    exit_code = 2


class SchemaError(ClerkSyncError):
    """The database schema is behind the code (or ahead of it)."""

    code = "schema_outdated"
    exit_code = 3


class RejectedDelivery(ClerkSyncError):
    """A request that is refused before anything is written: not proven to come from Clerk."""

    http_status = 400


class MissingHeader(RejectedDelivery):
    code = "missing_header"


class MalformedHeader(RejectedDelivery):
    code = "malformed_header"


class UnreadableBody(RejectedDelivery):
    code = "body_not_utf8"


class PayloadTooLarge(RejectedDelivery):
    code = "payload_too_large"
    http_status = 413


class TimestampOutOfTolerance(RejectedDelivery):
    code = "timestamp_out_of_tolerance"
    http_status = 401


class SignatureMismatch(RejectedDelivery):
    code = "signature_mismatch"
    http_status = 401


class InvalidPayload(ClerkSyncError):
    """Authentic, but can never be applied: recorded as ``failed``; retrying cannot help."""

    code = "payload_invalid"
    http_status = 422


class StoreUnavailable(ClerkSyncError):
    """The database could not commit; nothing was applied and a retry may succeed."""

    code = "store_unavailable"
    http_status = 503
    exit_code = 4


class DatabaseDirectoryMissing(StoreUnavailable):
    """The directory a SQLite ``DATABASE_URL`` points into does not exist."""

    code = "database_directory_missing"
    exit_code = 5


class DatabaseNotWritable(StoreUnavailable):
    """The SQLite file, or the directory its journal goes in, cannot be written."""

    code = "database_not_writable"
    exit_code = 6


class DatabaseUnreachable(StoreUnavailable):
    """Nothing answers at the database's host and port (refused, unknown host, timeout)."""

    code = "database_unreachable"
    exit_code = 7


class DatabaseUnknown(StoreUnavailable):
    """The server answers but has no database of the name ``DATABASE_URL`` gives."""

    code = "database_unknown"
    exit_code = 8


class DatabaseAuthFailed(StoreUnavailable):
    """The server refused the user or password of ``DATABASE_URL``."""

    code = "database_auth_failed"
    exit_code = 9


class DatabaseLocked(StoreUnavailable):
    """Another process held SQLite's lock for longer than the busy timeout."""

    code = "database_locked"
    exit_code = 10


class PortInUse(ClerkSyncError):
    """``serve`` cannot listen: another process already has the address and port."""

    code = "port_in_use"
    exit_code = 11


class Refused(ClerkSyncError):
    """Turned away by the guard (source address, rate limit) before anything is parsed."""

    http_status = 403


class SourceNotAllowed(Refused):
    code = "source_not_allowed"


class RateLimited(Refused):
    """The client spent its budget; ``retry_after`` seconds until it has some again."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServerUnreachable(ClerkSyncError):
    """A devtools command got no HTTP answer at all: connection refused, DNS failure, timeout."""

    code = "server_unreachable"


class ApiError(ClerkSyncError):
    """Errors of the read API."""


class Unauthorized(ApiError):
    code = "unauthorized"
    http_status = 401


class NotFound(ApiError):
    code = "not_found"
    http_status = 404


class InvalidParameter(ApiError):
    code = "invalid_parameter"
    http_status = 400


class PayloadGone(ApiError):
    """A replay asked for an event whose body is no longer stored: erased because its user
    was deleted, or pruned after ``EVENT_RETENTION_DAYS``. Nothing can bring it back here."""

    code = "payload_gone"
    http_status = 409


class EdgeLimit(ClerkSyncError):
    """A connection limit of :mod:`clerk_sync.web.edge` turned the request away before the app
    saw it: too many connections or unanswered body bytes at once (503 ``server_busy``, with
    ``retry_after``), a client too slow with its headers or body (408 ``request_timeout``), or
    request headers over 64 KiB (431 ``headers_too_large``)."""

    code = "server_busy"
    http_status = 503

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(detail, code=code)
        if http_status is not None:
            self.http_status = http_status
        self.retry_after = retry_after
