"""Bearer authentication: a secret key (``tr_dev_…``) or, where a view allows it, a public
access token (a JWT with ``pub: true``), as upstream's route builder."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import jwt
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request

from tokens.domain import keys, tenancy
from tokens.domain.exceptions import PermissionDenied
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

    def may_write_waitpoint(self, token_param: str) -> bool:
        """Upstream's scope grammar (``action:type[:id]``), matched against the id as the URL
        gives it: ``write:waitpoints:waitpoint_X`` covers ``…/waitpoint_X/…`` but not the bare
        ``…/X/…`` (and vice versa), exactly as upstream's ``buildJwtAbility`` compares them."""
        if self.scopes is None:
            return True
        for scope in self.scopes:
            action, _, rest = scope.partition(":")
            kind, _, ident = rest.partition(":")
            if action == "admin" and not kind:
                return True  # bare "admin" only; "admin:waitpoints" is no wildcard upstream
            if action not in ("write", "*"):
                continue
            if kind == "all" or (kind == "waitpoints" and ident in ("", token_param)):
                return True
        return False


class ScopeRefused(PermissionDenied):
    """A public access token without a scope for this token: upstream's 403, whose ``code``,
    ``param`` and ``type`` the SDK copies onto its ``PermissionDeniedError``."""

    wire_fields = {"code": "unauthorized", "param": "access_token", "type": "authorization"}

    def __init__(self) -> None:
        super().__init__("Unauthorized")


def check_write_scope(caller: ApiPrincipal, token_param: str) -> None:
    """Before the token is looked up, as upstream authorises before it finds the resource: a
    token without the scope learns nothing, not even whether the id exists."""
    if not caller.may_write_waitpoint(token_param):
        raise ScopeRefused()


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
    """``authenticate_bearer`` under the API's rate limits.

    A credential is checked first. A valid one is only ever held to its own call budget (per
    secret key, or per public access token), never to failures from its address: behind one NAT
    or proxy, somebody else's wrong keys must not lock out a right one. A refused credential is
    counted per client ``address``; once that address is over the failed-credential limit, its
    refused credentials answer 429 (with Retry-After) instead of 401.

    Returns the principal and where its budget stands (for the ``x-ratelimit-*`` headers; None
    when the limit is off or the counter store is down); raises RateLimited or
    AuthenticationFailed. Shared by the DRF views and the long-poll wait handler (wait.py).
    Synchronous: the counters are in Redis or, on the embedded default, the database.
    """
    credential = bearer_credential(header)
    if not credential:
        raise AuthenticationFailed("Invalid or Missing API key")  # not a guess: not counted
    try:
        caller = authenticate_credential(
            credential, allow_public_access_token=allow_public_access_token
        )
    except AuthenticationFailed:
        [failures] = ratelimit.check(ratelimit.Check(ratelimit.API_KEY_FAILURES, address, hit=True))
        _raise_if_limited(failures)
        raise
    if caller.scopes is None:
        assert caller.api_key is not None
        budget = ratelimit.Check(ratelimit.API_CALLS, f"key:{caller.api_key.pk}", hit=True)
    else:  # upstream: each public access token has a budget of its own
        budget = ratelimit.Check(
            ratelimit.PUBLIC_TOKEN_CALLS, f"jwt:{_fingerprint(credential)}", hit=True
        )
    [decision] = ratelimit.check(budget)
    _raise_if_limited(decision)
    return caller, decision


def _fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:32]


def _raise_if_limited(decision: ratelimit.Decision | None) -> None:
    if decision is not None and not decision.allowed:
        raise RateLimited(decision)


def bearer_credential(header: str) -> str:
    """The credential of an ``Authorization`` header, read as upstream does
    (``.replace(/^Bearer /, "").trim()``): the ``Bearer`` scheme is optional, so a bare
    ``tr_dev_…`` works too; we also accept the scheme in any case (RFC 9110 says it is)."""
    if header[:7].lower() == "bearer ":
        header = header[7:]
    return header.strip()


def authenticate_bearer(header: str, *, allow_public_access_token: bool) -> ApiPrincipal:
    """The principal behind an ``Authorization`` header; AuthenticationFailed otherwise (no
    rate limits: see ``authenticate_within_limits``)."""
    credential = bearer_credential(header)
    if not credential:
        raise AuthenticationFailed("Invalid or Missing API key")
    return authenticate_credential(credential, allow_public_access_token=allow_public_access_token)


def authenticate_credential(credential: str, *, allow_public_access_token: bool) -> ApiPrincipal:
    if _is_public_jwt(credential):
        if not allow_public_access_token:
            raise AuthenticationFailed("Invalid API key")
        return _public_access_token(credential)
    api_key = selectors.api_key_get_by_secret(secret=credential)
    if api_key is None:
        raise AuthenticationFailed("Invalid API key")
    tenancy.api_key_touch(api_key=api_key)
    return ApiPrincipal(environment=api_key.environment, api_key=api_key)


def _is_public_jwt(credential: str) -> bool:
    """Upstream's ``isPublicJWT``: a JWT whose payload says ``pub: true``; anything else is
    looked up as a secret key (and refused as "Invalid API key")."""
    if credential.count(".") != 2 or keys.looks_like_secret_key(credential):
        return False
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return False
    return isinstance(claims, dict) and claims.get("pub") is True


def _public_access_token(credential: str) -> ApiPrincipal:
    claims = jwt.decode(credential, options={"verify_signature": False})  # _is_public_jwt did
    environment = (
        selectors.environment_get_by_public_id(public_id=str(claims.get("sub")))
        if claims.get("sub")
        else None
    )
    if environment is None:
        raise AuthenticationFailed("Invalid Public Access Token")
    verified, signer = _verify(credential, environment)
    # As upstream: scopes that are not a list of strings grant nothing (a 403 where one is needed).
    scopes = verified.get("scopes")
    granted = tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else ()
    return ApiPrincipal(environment=environment, api_key=signer, scopes=granted)


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
