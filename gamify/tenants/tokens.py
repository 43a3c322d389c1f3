"""Player tokens: short-lived signed JWTs that let a mobile app read as one player."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import msgspec

TTL = timedelta(hours=1)
ALGORITHM = "HS256"
ISSUER = "gamify"
AUDIENCE = "gamify:player"


class PlayerToken(msgspec.Struct, frozen=True):
    tenant: str
    player: str
    expires_at: int = 0  # Unix seconds: a socket opened with the token closes then


class IssuedToken(msgspec.Struct, frozen=True):
    token: str
    expires_at: datetime


def issue(secret: str, tenant: str, player: str, now: datetime) -> IssuedToken:
    expires = now + TTL
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": player,
        "tid": tenant,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    return IssuedToken(token, datetime.fromtimestamp(int(expires.timestamp()), UTC))


def verify(secret: str, token: str) -> PlayerToken | None:
    """The token's player, or None when it is forged, expired or not a player token."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return None
    tenant, player, expires = claims.get("tid"), claims.get("sub"), claims.get("exp")
    if not isinstance(tenant, str) or not isinstance(player, str):
        return None
    return PlayerToken(tenant, player, expires if isinstance(expires, int) else 0)
