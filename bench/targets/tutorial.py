"""Target (c), the baseline: the receiver Python tutorials teach. FastAPI, `svix` verify, the
SQLAlchemy ORM with a session and a commit per request, SQLite as the tutorial configures it.
Kept deliberately naive (no dedupe, no version guard): that is what it stands for."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import JSON, BigInteger, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from svix.webhooks import Webhook, WebhookVerificationError

engine = create_engine(os.environ["DATABASE_URL"], connect_args={"check_same_thread": False})
SessionLocal = sessionmaker(bind=engine, autoflush=False)
app = FastAPI()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String, primary_key=True)
    email: Mapped[str | None]
    first_name: Mapped[str | None]
    last_name: Mapped[str | None]
    username: Mapped[str | None]
    image_url: Mapped[str | None]
    public_metadata: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


Base.metadata.create_all(engine)


def get_db() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def apply_fields(user: User, data: dict[str, Any]) -> None:
    emails = data.get("email_addresses") or []
    user.email = emails[0]["email_address"] if emails else None
    user.first_name = data.get("first_name")
    user.last_name = data.get("last_name")
    user.username = data.get("username")
    user.image_url = data.get("image_url")
    user.public_metadata = data.get("public_metadata") or {}
    user.created_at = data["created_at"]
    user.updated_at = data["updated_at"]


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/webhooks/clerk")
async def clerk_webhook(request: Request, db: Session = Depends(get_db)) -> dict[str, bool]:
    payload = await request.body()
    try:
        Webhook(os.environ["CLERK_WEBHOOK_SECRET"]).verify(payload, dict(request.headers))
    except WebhookVerificationError:
        raise HTTPException(status_code=400, detail="invalid signature") from None
    event = json.loads(payload)
    data = event["data"]
    if event["type"] == "user.created":
        user = User(id=data["id"])
        apply_fields(user, data)
        db.add(user)
    elif event["type"] == "user.updated":
        user = db.get(User, data["id"]) or User(id=data["id"])
        apply_fields(user, data)
        db.add(user)
    elif event["type"] == "user.deleted":
        user = db.get(User, data["id"])
        if user:
            db.delete(user)
    db.commit()
    return {"success": True}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
