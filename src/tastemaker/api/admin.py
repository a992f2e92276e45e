"""Operator actions shared by the CLI and the tests: issue (with scopes), list and revoke API keys."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ..audit import KEY_CREATED, KEY_REVOKED, AuditLog
from ..errors import NotFoundError
from ..store import Store
from ..store.records import ApiKey, utcnow
from .keys import ALL_SCOPES, display_prefix, generate_key, key_hash, parse_scopes
from .settings import ServerSettings


@dataclass(frozen=True)
class IssuedKey:
    key: str  # shown once, never stored
    key_id: str
    account_id: str
    tier: str
    scopes: str = ALL_SCOPES


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    prefix: str
    name: str
    account_id: str
    account_name: str
    tier: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: str = ALL_SCOPES


def issue_key(
    store: Store,
    audit: AuditLog,
    settings: ServerSettings,
    *,
    name: str,
    tier: str = "free",
    account_id: str | None = None,
    scopes: Iterable[str] | None = None,
) -> IssuedKey:
    """A new key — for a new account named ``name`` on ``tier``, or an extra key for ``account_id`` — with
    ``scopes`` (names from :data:`~tastemaker.api.keys.SCOPES`; None or empty: all of them)."""
    stored_scopes = parse_scopes(scopes)
    with store.session() as s:
        if account_id is None:
            settings.tier(tier)  # unknown tier -> ConfigurationError naming the known ones
            account = s.create_account(name, tier)
        else:
            found = s.get_account(account_id)
            if found is None:
                raise NotFoundError(f"account {account_id!r} not found")
            account = found
        key = generate_key()
        row = s.add_key(account.id, name=name, key_hash=key_hash(key), prefix=display_prefix(key), scopes=stored_scopes)
        audit.append(
            s,
            KEY_CREATED,
            account_id=account.id,
            objects={"key": row.id},
            detail={"tier": account.tier, "prefix": row.prefix, "scopes": stored_scopes},
        )
        s.commit()
        return IssuedKey(key=key, key_id=row.id, account_id=account.id, tier=account.tier, scopes=stored_scopes)


def _info(k: ApiKey) -> KeyInfo:
    same = ("prefix", "name", "account_id", "created_at", "last_used_at", "revoked_at", "scopes")
    return KeyInfo(key_id=k.id, account_name=k.account.name, tier=k.account.tier, **{f: getattr(k, f) for f in same})


def list_keys(store: Store) -> list[KeyInfo]:
    with store.session() as s:
        return [_info(k) for k in s.list_keys()]


def revoke_key(store: Store, audit: AuditLog, key_id: str) -> KeyInfo:
    """Revoke by key id (``key_...``) or display prefix (``tm_XXXXXXXX``); revoking twice is a no-op."""
    with store.session() as s:
        matches = [k for k in s.list_keys() if k.id == key_id or k.prefix == key_id]
        if not matches:
            raise NotFoundError(f"no API key with id or prefix {key_id!r}; see `tastemaker keys list`")
        if len(matches) > 1:
            raise NotFoundError(f"{len(matches)} keys share the prefix {key_id!r}; revoke by key id instead")
        key = matches[0]
        if key.revoked_at is None:
            s.revoke_key(key, utcnow())
            audit.append(s, KEY_REVOKED, account_id=key.account_id, objects={"key": key.id})
            s.commit()
        return _info(key)
