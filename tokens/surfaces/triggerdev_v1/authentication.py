"""Bearer authentication: a secret key (``tr_dev_…``) or, where a view allows it, a public
access token (a JWT with ``pub: true``), as upstream's route builder."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request

from tokens.domain import keys, tenancy
from tokens.models import ApiKey, Environment, TokenEvent
from tokens.persistence import selectors
from tokens.surfaces.common import ratelimit

JWT_ISSUER = "https://id.trigger.dev"
JWT_AUDIENCE = "https://api.trigger.dev"


@dataclass(frozen=True)
class ApiPrincipal:
    """What DRF keeps in ``request.user``: the environment the credential belongs to."""

    environment: Environment
    # The secret key used, or the one that signed a public access token (None: we issued it).
    api_key: ApiKey | None = None
    scopes: tuple[str, ...] | None = None  # None: a secret key, which may do everything

    @property
    def credential(self) -> str:
        if self.scopes is None:
            return TokenEvent.Credential.SECRET_KEY
        return TokenEvent.Credential.PUBLIC_ACCESS_TOKEN

    is_authenticated = True

    def may_write_waitpoint(self, token_param: str, friendly_id: str) -> bool:
        if self.scopes is None:
            return True
        allowed = {"write:all", "admin", "write:waitpoints", "*:waitpoints", "*:all"}
        for token_id in {token_param, friendly_id, friendly_id.removeprefix(keys.FRIENDLY_PREFIX)}:
            allowed |= {f"write:waitpoints:{token_id}", f"*:waitpoints:{token_id}"}
        return any(scope in allowed for scope in self.scopes)


def principal(request: Request) -> ApiPrincipal:
    """The authenticated caller of an API view (DRF keeps it in ``request.user``)."""
    caller = request.user
    if not isinstance(caller, ApiPrincipal):
        raise AuthenticationFailed("Invalid or Missing API key")
    return caller


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ApiPrincipal, ApiPrincipal]:
        view = request.parser_context.get("view") if request.parser_context else None
        try:
            caller, decision = authenticate_within_limits(
                request.META.get("HTTP_AUTHORIZATION", ""),
                ratelimit.client_ip(request),
                allow_public_access_token=getattr(view, "allow_public_access_token", False),
            )
        except RateLimited as refused:
            # 429; the headers are added by ratelimit.RateLimitHeadersMiddleware.
            ratelimit.remember(request, refused.decision)
            raise Throttled(detail=str(refused)) from None
        ratelimit.remember(request, decision)
        return caller, caller

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class RateLimited(Exception):
    """Over a rate limit: answer 429 with ``decision.headers()`` and this message."""

    def __init__(self, decision: ratelimit.Decision) -> None:
        super().__init__(ratelimit.message(decision))
        self.decision = decision


def authenticate_within_limits(
    header: str, address: str, *, allow_public_access_token: bool
) -> tuple[ApiPrincipal, ratelimit.Decision | None]:
    """``authenticate_bearer`` under the API's rate limits: failed credentials per client
    ``address`` (over that limit every credential is refused), then calls per key.

    Returns the principal and where its key stands (for the ``x-ratelimit-*`` headers; None when
    the limit is off or the counter store is down); raises RateLimited or AuthenticationFailed.
    Shared by the DRF views and the long-poll wait handler (tokens/api/wait.py). Synchronous:
    the counters are in Redis or, on the embedded default, the database.
    """
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthenticationFailed("Invalid or Missing API key")  # not a guess: not counted
    # Both counters are read and counted in one round trip, after the key lookup: over the
    # failed-credential limit even a right key is refused, so a limited guesser learns nothing.
    try:
        caller = authenticate_bearer(header, allow_public_access_token=allow_public_access_token)
    except AuthenticationFailed:
        [failures] = ratelimit.check(ratelimit.Check(ratelimit.API_KEY_FAILURES, address, hit=True))
        _raise_if_limited(failures)
        raise
    key = caller.api_key
    subject = f"key:{key.pk}" if key is not None else f"env:{caller.environment.pk}"
    failures, decision = ratelimit.check(
        ratelimit.Check(ratelimit.API_KEY_FAILURES, address, hit=False),
        ratelimit.Check(ratelimit.API_CALLS, subject, hit=True),
    )
    _raise_if_limited(failures)
    _raise_if_limited(decision)
    return caller, decision


def _raise_if_limited(decision: ratelimit.Decision | None) -> None:
    if decision is not None and not decision.allowed:
        raise RateLimited(decision)


def authenticate_bearer(header: str, *, allow_public_access_token: bool) -> ApiPrincipal:
    """The principal behind an ``Authorization`` header; AuthenticationFailed otherwise (no
    rate limits: see ``authenticate_within_limits``)."""
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationFailed("Invalid or Missing API key")
    if credential.count(".") == 2 and not keys.looks_like_secret_key(credential):
        if not allow_public_access_token:
            raise AuthenticationFailed("Invalid API key")
        return _public_access_token(credential)
    api_key = selectors.api_key_get_by_secret(secret=credential)
    if api_key is None:
        raise AuthenticationFailed("Invalid API key")
    tenancy.api_key_touch(api_key=api_key)
    return ApiPrincipal(environment=api_key.environment, api_key=api_key)


def _public_access_token(credential: str) -> ApiPrincipal:
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise AuthenticationFailed("Invalid Public Access Token") from None
    environment = (
        selectors.environment_get_by_public_id(public_id=str(claims.get("sub")))
        if claims.get("pub") is True and claims.get("sub")
        else None
    )
    if environment is None:
        raise AuthenticationFailed("Invalid Public Access Token")
    verified, signer = _verify(credential, environment)
    scopes = verified.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise AuthenticationFailed("Public Access Token is invalid")
    return ApiPrincipal(environment=environment, api_key=signer, scopes=tuple(scopes))


def _verify(credential: str, environment: Environment) -> tuple[dict[str, object], ApiKey | None]:
    """The claims, and the key that signed them (None: our own signing secret)."""
    # Ours are signed with the environment's signing secret; the SDK's auth.createPublicToken
    # signs with the secret key itself, so try each active key too.
    secrets_to_try: list[tuple[str, ApiKey | None]] = [(environment.signing_secret, None)]
    secrets_to_try += [
        (secret, api_key)
        for api_key in selectors.api_keys_active_for_environment(environment=environment)
        if (secret := keys.decrypt(api_key.encrypted_key))
    ]
    for secret, signer in secrets_to_try:
        try:
            claims = jwt.decode(
                credential,
                secret,
                algorithms=["HS256"],
                audience=JWT_AUDIENCE,
                issuer=JWT_ISSUER,
                options={"require": ["exp", "sub"]},
            )
        except jwt.InvalidTokenError:
            continue
        return claims, signer
    raise AuthenticationFailed("Public Access Token is invalid")


PUBLIC_TOKEN_LIFETIME_SECONDS = 24 * 3600  # upstream's code signs 24 hours


def public_claims(environment: Environment) -> dict[str, object]:
    return {"sub": environment.public_id, "pub": True}


def issue_public_access_token(*, environment: Environment, friendly_id: str, now: int) -> str:
    """The JWT sent as ``x-trigger-jwt`` on create: it may complete exactly this token."""
    payload = {
        **public_claims(environment),
        "scopes": [f"write:waitpoints:{friendly_id}"],
        "iss": JWT_ISSUER,
        "aud": JWT_AUDIENCE,
        "iat": now,
        "exp": now + PUBLIC_TOKEN_LIFETIME_SECONDS,
    }
    return jwt.encode(payload, environment.signing_secret, algorithm="HS256")
