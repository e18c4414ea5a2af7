"""Authentication over GraphQL: Directus's system mutations, and the other system's ``Auth``.

Needs ``graphql-core`` (``pip install tokenguard[graphql]``). Two endpoints, each at its own
path and each registered with the :class:`~tokenguard.http.routes.AuthRouter`, so they work
under both shells:

``TOKENGUARD_GRAPHQL_PATH`` (default ``/graphql/system``, on with ``TOKENGUARD_GRAPHQL_ENABLED``)
    Directus's ``auth_login``, ``auth_refresh``, ``auth_logout``, ``auth_password_request``
    and ``auth_password_reset`` (spec §15): the default mode is ``json`` for all three token
    mutations, ``expires`` is a string, cookies are set and cleared as over REST, resolver
    errors are HTTP 200 with ``data.<field>: null`` and an ``errors`` entry whose
    ``extensions.code`` comes first; a document that does not validate is a 400
    ``GRAPHQL_VALIDATION``; a mutation over GET is a 405.
``TOKENGUARD_GRAPHQL_AUTH_SERVICE_PATH`` (off by default; e.g. ``/service/auth``)
    CollectiveAccess's ``Auth`` service shape (spec §17): ``login(username, password) { jwt
    refresh user { id fname lname email } }`` and ``refresh(token) { jwt }`` as *query* fields,
    answered as ``{"ok": true, "data": …}``; ``token`` defaults to the Bearer token.

Stricter than Directus, on purpose: one authentication field per request (aliases cannot
multiply password guesses past the login stall and the rate limits), and the ``Auth``
service's ``refresh`` re-issues an access token from a live refresh token without rotating it
(its reply has no room for a new refresh token) and never from an access token (given an
access token it answers that same token, as the Auth service's own refresh keeps its expiry);
no token is read from the URL, where access logs would keep it.

Resolvers are flows (:mod:`tokenguard.flow`): each returns an awaitable whose ``__await__`` is
the flow itself, and :func:`_drive` runs graphql-core's execution coroutine step by step,
handing each store call out to whichever driver runs the route — so the same resolvers serve
WSGI (no event loop) and ASGI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthError,
    MissingExtra,
    invalid_credentials,
    invalid_payload,
    service_unavailable,
)

try:
    from graphql import (
        DocumentNode,
        ExecutionResult,
        FieldNode,
        FragmentDefinitionNode,
        FragmentSpreadNode,
        GraphQLError,
        GraphQLScalarType,
        GraphQLSchema,
        InlineFragmentNode,
        OperationDefinitionNode,
        OperationType,
        SelectionSetNode,
        build_schema,
        execute,
        get_operation_ast,
        parse,
        validate,
    )
except ImportError as exc:
    raise MissingExtra("tokenguard's GraphQL endpoints", "graphql-core", "graphql") from exc

from ..auth.refresh_tokens import is_refresh_token
from ..auth.service import Credentials, Mode, Tokens
from ..flow import Flow
from ..guard.extract import parse_cookie
from ..jose.tokens import issue_access_token
from ..stores.base import User, refresh_token_key
from .body import parse_json_body
from .cookies import clear_cookie, set_cookie
from .views import RequestView, ResponseView, json_response

if TYPE_CHECKING:
    from .routes import AuthRouter

__all__ = ["GraphQLRoutes", "SYSTEM_SDL", "AUTH_SERVICE_SDL"]

log = logging.getLogger("tokenguard.graphql")

SYSTEM = "graphql_system"
SERVICE = "graphql_auth_service"

NO_REFRESH_TOKEN = "The refresh token is required in either the payload or cookie"
ONE_AUTH_FIELD = "Only one authentication operation is allowed per request."

SYSTEM_SDL = """
scalar GraphQLBigInt
enum auth_mode { json cookie session }
type auth_tokens { access_token: String expires: GraphQLBigInt refresh_token: String }
type Query { server_ping: String }
type Mutation {
  auth_login(email: String!, password: String!, mode: auth_mode, otp: String): auth_tokens
  auth_refresh(refresh_token: String, mode: auth_mode): auth_tokens
  auth_logout(refresh_token: String, mode: auth_mode): Boolean
  auth_password_request(email: String!, reset_url: String): Boolean
  auth_password_reset(token: String!, password: String!): Boolean
}
"""
_SYSTEM_FIELDS = frozenset(
    {"auth_login", "auth_refresh", "auth_logout", "auth_password_request", "auth_password_reset"}
)

AUTH_SERVICE_SDL = """
type UserInfo {
  id: String username: String email: String fname: String lname: String userclass: Int
}
type User { id: String jwt: String refresh: String user: UserInfo }
type Refresh { jwt: String }
type Query {
  login(username: String, password: String): User
  refresh(token: String): Refresh
}
"""
_SERVICE_FIELDS = frozenset({"login", "refresh"})

_NO_CACHE = [("cache-control", "no-cache"), ("vary", "Origin, Cache-Control")]


def _compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _big_int(value: Any) -> str:
    # Directus's GraphQLBigInt: numbers beyond 2^31 go out as strings, and so does `expires`.
    return str(int(value))


# -- running flows inside graphql-core's execution ---------------------------------------------


class _FlowAwaitable:
    """An awaitable whose steps are a flow's :class:`~tokenguard.flow.Call`/``Sleep`` values."""

    __slots__ = ("flow",)

    def __init__(self, flow: Flow[Any]) -> None:
        self.flow = flow

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield from self.flow)


def _drive(result: Any) -> Flow[ExecutionResult]:
    """Run graphql-core's result to the end as a flow: a plain ``ExecutionResult`` as is, an
    execution coroutine by passing its steps out to the shell's driver and the answers in."""
    if isinstance(result, ExecutionResult):
        return result
    steps = result.__await__()
    send: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.throw(error) if error is not None else steps.send(send)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        send, error = None, None
        try:
            send = yield step
        except Exception as exc:  # the driver's failure goes back into the resolver's flow
            error = exc


@dataclass
class _Context:
    request: RequestView
    scheme: str
    headers: list[tuple[str, str]] = field(default_factory=list)


def _graphql_error(error: AuthError) -> GraphQLError:
    extensions = {"code": error.code}
    for key, value in error.extensions.items():
        if key != "code":
            extensions[key] = value
    return GraphQLError(error.message, extensions=extensions)


def _format(error: GraphQLError) -> dict[str, Any]:
    # Directus's order: message, extensions (code first), locations, path.
    out: dict[str, Any] = {"message": error.message}
    extensions = dict(error.extensions or {})
    code = extensions.pop("code", None)
    if code is not None:
        out["extensions"] = {"code": code, **extensions}
    elif extensions:
        out["extensions"] = extensions
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path is not None:
        out["path"] = list(error.path)
    return out


def _validation_error(errors: list[GraphQLError]) -> AuthError:
    formatted = [_format(e) for e in errors]
    return AuthError(400, "GRAPHQL_VALIDATION", "GraphQL validation error.", {"errors": formatted})


def _top_level_fields(
    selection_set: SelectionSetNode, document: DocumentNode, seen: set[str]
) -> list[str]:
    """The field names an operation runs at its root, through fragments."""
    names: list[str] = []
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            names.append(selection.name.value)
        elif isinstance(selection, InlineFragmentNode):
            names.extend(_top_level_fields(selection.selection_set, document, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                seen.add(name)
                names.extend(_top_level_fields(fragment.selection_set, document, seen))
    return names


# -- the routes ----------------------------------------------------------------------------------


class GraphQLRoutes:
    """Serves the GraphQL auth endpoints for an :class:`~tokenguard.http.routes.AuthRouter`."""

    def __init__(self, router: AuthRouter) -> None:
        self.router = router
        self.service = router.service
        settings = router.settings
        self.settings = settings
        self.paths: list[tuple[str, str]] = []
        if settings.graphql_enabled:
            self.paths.append((settings.graphql_path, SYSTEM))
        if settings.graphql_auth_service_path:
            self.paths.append((settings.graphql_auth_service_path, SERVICE))
        #: The route names this object answers.
        self.names = frozenset(name for _, name in self.paths)
        self._refresh_cookie = settings.refresh_cookie
        self._session_cookie = settings.session_cookie
        self.system = self._system_schema()
        self.auth_service = self._service_schema()

    # -- schemas ---------------------------------------------------------------------------

    def _system_schema(self) -> GraphQLSchema:
        schema = build_schema(SYSTEM_SDL)
        scalar = schema.type_map["GraphQLBigInt"]
        assert isinstance(scalar, GraphQLScalarType)
        # graphql-core 3.3 reads coerce_output_value; older releases read serialize.
        scalar.serialize = _big_int  # type: ignore[method-assign]
        scalar.coerce_output_value = _big_int
        assert schema.query_type is not None and schema.mutation_type is not None
        schema.query_type.fields["server_ping"].resolve = lambda *_: "pong"
        mutations = schema.mutation_type.fields
        for name in _SYSTEM_FIELDS:
            mutations[name].resolve = self._resolver(getattr(self, f"_{name}"))
        return schema

    def _service_schema(self) -> GraphQLSchema:
        schema = build_schema(AUTH_SERVICE_SDL)
        assert schema.query_type is not None
        queries = schema.query_type.fields
        queries["login"].resolve = self._resolver(self._ca_login)
        queries["refresh"].resolve = self._resolver(self._ca_refresh)
        return schema

    def _resolver(self, make_flow: Any) -> Any:
        def resolve(_root: Any, info: Any, **args: Any) -> _FlowAwaitable:
            return _FlowAwaitable(self._guarded(make_flow(info.context, **args)))

        return resolve

    @staticmethod
    def _guarded(flow: Flow[Any]) -> Flow[Any]:
        try:
            return (yield from flow)
        except AuthError as error:
            raise _graphql_error(error) from None
        except GraphQLError:
            raise
        except Exception as exc:  # never a traceback, never a yes
            log.error("graphql resolver failed: %s", type(exc).__name__)
            raise _graphql_error(
                service_unavailable("authentication", "Unexpected error")
            ) from None

    # -- HTTP ------------------------------------------------------------------------------

    def handle(
        self, route: str, request: RequestView, scheme: str = "http"
    ) -> Generator[Any, Any, ResponseView]:
        """Answer a request to one of our paths (a flow); raises AuthError for 4xx bodies."""
        method = request.method
        if method not in ("GET", "POST"):
            raise AuthError(
                404,
                "ROUTE_NOT_FOUND",
                f"Route {request.path} doesn't exist.",
                {"path": request.path},
            )
        query, variables, operation_name = self._read(request)
        schema = self.system if route == SYSTEM else self.auth_service
        try:
            document = parse(query)
        except GraphQLError as error:
            raise AuthError(
                400,
                "INVALID_PAYLOAD",
                "Invalid payload. GraphQL schema validation error.",
                {"reason": "GraphQL schema validation error", "graphqlErrors": [_format(error)]},
            ) from None
        errors = validate(schema, document)
        if errors:
            raise _validation_error(list(errors))
        operation = get_operation_ast(document, operation_name)
        if method == "GET" and (operation is None or operation.operation != OperationType.QUERY):
            raise AuthError(
                405,
                "METHOD_NOT_ALLOWED",
                'Invalid method "GET" used. Should be one of POST.',
                {"allowed": ["POST"], "current": "GET"},
            )
        if operation is not None:
            self._one_auth_field(operation, document, route)
        context = _Context(request, scheme)
        result = yield from _drive(
            execute(
                schema,
                document,
                variable_values=variables,
                operation_name=operation_name,
                context_value=context,
            )
        )
        if route == SERVICE:
            return self._service_response(result, context)
        body: dict[str, Any] = {"data": result.data}
        if result.errors:
            body["errors"] = [_format(e) for e in result.errors]
        return json_response(200, _compact(body), [*_NO_CACHE, *context.headers])

    def _read(self, request: RequestView) -> tuple[str, dict[str, Any] | None, str | None]:
        if request.method == "GET":
            from urllib.parse import parse_qs

            params = parse_qs(request.query_string)
            data: Any = {k: v[0] for k, v in params.items() if len(v) == 1}
            if "variables" in data:
                try:
                    data["variables"] = json.loads(data["variables"])
                except (ValueError, RecursionError):
                    raise invalid_payload("Variables are invalid JSON") from None
        else:
            data = parse_json_body(request.body, request.headers.get("content-type"))
            if isinstance(data, AuthError):
                raise data
        if not isinstance(data, dict):
            data = {}
        query = data.get("query")
        if not isinstance(query, str) or not query:
            raise invalid_payload("Must provide query string")
        variables = data.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise invalid_payload("Variables are invalid JSON")
        operation_name = data.get("operationName")
        if operation_name is not None and not isinstance(operation_name, str):
            raise invalid_payload("Operation name must be a string")
        return query, variables, operation_name

    @staticmethod
    def _one_auth_field(
        operation: OperationDefinitionNode, document: DocumentNode, route: str
    ) -> None:
        sensitive = _SYSTEM_FIELDS if route == SYSTEM else _SERVICE_FIELDS
        names = _top_level_fields(operation.selection_set, document, set())
        if sum(1 for n in names if n in sensitive) > 1:
            raise _validation_error([GraphQLError(ONE_AUTH_FIELD)])

    # -- Directus's mutations ----------------------------------------------------------------

    def _check(self, ctx: _Context, mode: str) -> None:
        """The REST route's cross-site check, for the same operations (the request itself
        was counted by the app-wide rate limits, as every request is)."""
        self.router._check_origin(ctx.request, mode, ctx.scheme)

    def _tokens(self, ctx: _Context, tokens: Tokens) -> dict[str, Any]:
        now = self.service.clock()
        data: dict[str, Any] = {
            "access_token": None,
            "expires": tokens.expires_ms,
            "refresh_token": None,
        }
        if tokens.mode == "json":
            data["access_token"] = tokens.access_token
            data["refresh_token"] = tokens.refresh_token
        elif tokens.mode == "cookie":
            data["access_token"] = tokens.access_token
            cookie = set_cookie(self._refresh_cookie, tokens.refresh_token, now)
            ctx.headers.append(("set-cookie", cookie))
        else:
            cookie = set_cookie(self._session_cookie, tokens.access_token, now)
            ctx.headers.append(("set-cookie", cookie))
        return data

    def _presented(self, ctx: _Context, mode: str, refresh_token: str | None) -> str:
        cookie = ctx.request.cookie
        token: Any = None
        if mode == "json":
            token = refresh_token
        elif mode == "cookie":
            token = parse_cookie(cookie, self._refresh_cookie.name) if cookie else None
        else:
            token = self.router._session_token(cookie)
        if not token:
            raise invalid_payload(NO_REFRESH_TOKEN)
        return str(token)

    def _auth_login(
        self,
        ctx: _Context,
        email: str,
        password: str,
        mode: Mode | None = None,
        otp: str | None = None,
    ) -> Flow[dict[str, Any]]:
        started = self.service.monotonic()
        mode = mode or "json"
        self._check(ctx, mode)
        # No payload validation here, as in Directus: a malformed e-mail is just unknown.
        credentials = Credentials(email, password, otp)
        client = self.router._client(ctx.request)
        tokens = yield from self.service.login(credentials, mode, client, started)
        return self._tokens(ctx, tokens)

    def _auth_refresh(
        self, ctx: _Context, refresh_token: str | None = None, mode: Mode | None = None
    ) -> Flow[dict[str, Any]]:
        mode = mode or "json"
        self._check(ctx, mode)
        token = self._presented(ctx, mode, refresh_token)
        tokens = yield from self.service.refresh(token, mode, self.router._client(ctx.request))
        return self._tokens(ctx, tokens)

    def _auth_logout(
        self, ctx: _Context, refresh_token: str | None = None, mode: Mode | None = None
    ) -> Flow[bool]:
        mode = mode or "json"
        self._check(ctx, mode)
        token = self._presented(ctx, mode, refresh_token)
        yield from self.service.logout(token, self.router._client(ctx.request))
        cookie = ctx.request.cookie
        if cookie:
            if parse_cookie(cookie, self._refresh_cookie.name):
                ctx.headers.append(("set-cookie", clear_cookie(self._refresh_cookie)))
            if parse_cookie(cookie, self._session_cookie.name):
                ctx.headers.append(("set-cookie", clear_cookie(self._session_cookie)))
        return True

    def _account(self) -> Any:
        account = self.router.account
        if account is None:
            raise service_unavailable("authentication", "Password reset is not configured")
        return account

    def _auth_password_request(
        self, ctx: _Context, email: str, reset_url: str | None = None
    ) -> Flow[bool]:
        from ..auth.reset import ResetRequest

        started = self.service.monotonic()
        try:
            yield from self._account().reset.request(
                ResetRequest(email, reset_url or None), started, self.router._client(ctx.request)
            )
        except AuthError as error:
            if error.code == "INVALID_PAYLOAD":
                raise
            # Directus answers true whatever else went wrong: nothing to learn from it.
            log.info("graphql password request: %s", error.code)
        return True

    def _auth_password_reset(self, ctx: _Context, token: str, password: str) -> Flow[bool]:
        from ..auth.reset import ResetPayload

        client = self.router._client(ctx.request)
        yield from self._account().reset.reset(ResetPayload(token, password), client)
        return True

    # -- the Auth service ----------------------------------------------------------------------

    def _ca_login(
        self, ctx: _Context, username: str | None = None, password: str | None = None
    ) -> Flow[dict[str, Any]]:
        started = self.service.monotonic()
        failed: dict[str, Any] = {"id": None, "jwt": None, "refresh": None, "user": None}
        if not username or not password:
            yield from self.service.stall(started)
            return failed
        self._check(ctx, "json")
        client = self.router._client(ctx.request)
        try:
            tokens = yield from self.service.login(
                Credentials(username, password), "json", client, started
            )
        except AuthError as error:
            if error.code not in ("INVALID_CREDENTIALS", "INVALID_OTP", "USER_SUSPENDED"):
                raise  # a store outage or a rate limit is an error, not "no such user"
            return failed  # the Auth service answers a failed login with nulls, not an error
        user: User | None = yield from self.service._store(
            self.service.users.get_by_email, username
        )
        info = None
        if user is not None:
            info = {
                "id": user.id,
                "username": user.email,
                "email": user.email,
                "fname": user.first_name,
                "lname": user.last_name,
                "userclass": 0,
            }
        return {
            "id": user.id if user is not None else None,
            "jwt": tokens.access_token,
            "refresh": tokens.refresh_token,
            "user": info,
        }

    def _ca_refresh(self, ctx: _Context, token: str | None = None) -> Flow[dict[str, Any]]:
        """A new access token from a live refresh token, without rotating it. The token is the
        ``token`` argument, else the Bearer token. Never a URL parameter: a refresh token in a
        URL ends up in every access log on its way (a Bearer refresh token is refused by the
        guard before this runs, so refresh tokens go in the argument, i.e. the body)."""
        if token is None:
            authorization = ctx.request.headers.get("authorization") or ""
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() == "bearer" and value:
                token = value
        service = self.service
        now = service.clock()
        if token and not is_refresh_token(token):
            claims = self.router.verifier.verify(token, now)
            if isinstance(claims, dict) and claims.get("id") is not None:
                # An access token "refreshes" to itself, as the Auth service's own refresh
                # keeps every claim, expiry included: nothing gets extended that way.
                return {"jwt": token}
            raise invalid_credentials()
        if not token:
            raise invalid_credentials()
        record = yield from service._store(
            service.sessions.get, refresh_token_key(token), int(now * 1000)
        )
        if record is None:
            raise invalid_credentials()
        user: User | None = yield from service._store(service.users.get_by_id, record.user_id)
        if user is None or user.status != "active":
            raise invalid_credentials()
        jwt = issue_access_token(
            service.token_policy,
            user_id=user.id,
            role=user.role,
            app_access=user.app_access,
            admin_access=user.admin_access,
            ttl_ms=self.settings.access_token_ttl_ms,
            now=now,
            sid=record.family,
        )
        return {"jwt": jwt}

    def _service_response(self, result: ExecutionResult, ctx: _Context) -> ResponseView:
        # The Auth service's envelope: {"ok", "data", "errors"}; errors answer 401 when they
        # are about credentials, 500 otherwise (as its GraphQL errors do).
        if not result.errors:
            body: dict[str, Any] = {"ok": True, "data": result.data}
            return json_response(200, _compact(body), [*_NO_CACHE, *ctx.headers])
        errors = []
        status = 500
        for error in result.errors:
            entry = _format(error)
            code = (error.extensions or {}).get("code")
            if code in ("INVALID_CREDENTIALS", "TOKEN_EXPIRED", "INVALID_TOKEN"):
                status = 401
            errors.append(entry)
        failed: dict[str, Any] = {"ok": False, "data": result.data, "errors": errors}
        return json_response(status, _compact(failed), list(_NO_CACHE))
