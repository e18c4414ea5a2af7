"""The logging filter and its installation: records are rewritten, never dropped or broken."""

from __future__ import annotations

import io
import logging
import logging.config
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.tokens import SECRET, mint
from tokenguard import TokenGuard
from tokenguard.config import Settings
from tokenguard.logs.filter import LOGGERS, RedactingFilter, install_log_redaction, redaction_filter
from tokenguard.logs.redact import PLACEHOLDER, default_redactor

TOKEN = "tg-test-fake.token-Zq8Xw7Vu6Ts5Rq4Po3Nm"


class Capture:
    def __init__(self, logger: logging.Logger, fmt: logging.Formatter | None = None) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(fmt or logging.Formatter("%(levelname)s %(message)s"))
        logger.addHandler(self.handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        self.logger = logger

    @property
    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def cap() -> Iterator[Capture]:
    logger = logging.getLogger(f"tg-test-{uuid.uuid4().hex}")
    logger.addFilter(RedactingFilter(default_redactor()))  # independent of other tests' names
    capture = Capture(logger)
    yield capture
    logger.removeHandler(capture.handler)


def test_message_args_and_format_string(cap: Capture) -> None:
    log = cap.logger
    log.info("GET /x?access_token=%s&y=1", TOKEN)  # name in the template, value in an argument
    log.info("%s - %s", "127.0.0.1", f"/x?access_token={TOKEN}")
    log.info(f"plain /x?page=1&refresh_token={TOKEN}")
    log.info("%(url)s", {"url": f"/x?access_token={TOKEN}"})
    log.info("bytes %s", f"access_token={TOKEN}".encode())
    log.warning(ValueError(f"bad Bearer {TOKEN}"))
    assert TOKEN not in cap.text
    assert cap.text.count(PLACEHOLDER) == 6
    assert "&y=1" in cap.text


def test_objects_keep_str_and_repr(cap: Capture) -> None:
    class URL:
        def __str__(self) -> str:
            return f"http://h/x?access_token={TOKEN}"

        def __repr__(self) -> str:
            return f"URL('http://h/x?access_token={TOKEN}')"

    cap.logger.info("s=%s r=%r n=%d f=%.1f", URL(), URL(), 3, 1.5)
    assert cap.text.strip() == (
        f"INFO s=http://h/x?access_token={PLACEHOLDER} r=URL('http://h/x?access_token={PLACEHOLDER}') n=3 f=1.5"
    )


def test_caller_dict_is_not_modified(cap: Capture) -> None:
    data = {"url": f"/x?access_token={TOKEN}"}
    cap.logger.info("%(url)s", data)
    assert data["url"] == f"/x?access_token={TOKEN}"
    assert TOKEN not in cap.text


def test_exception_text_is_redacted_and_cannot_be_rendered_again(cap: Capture) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    cap.logger.addHandler(keep)
    try:
        raise RuntimeError(f"upstream refused http://h/x?access_token={TOKEN}")
    except RuntimeError:
        cap.logger.exception("request failed")
    cap.logger.removeHandler(keep)
    assert "RuntimeError: upstream refused" in cap.text
    assert "Traceback (most recent call last)" in cap.text
    assert TOKEN not in cap.text
    assert records[0].exc_info is None
    assert TOKEN not in (records[0].exc_text or "")


def test_exception_without_secret_keeps_exc_info(cap: Capture) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    cap.logger.addHandler(Keep())
    try:
        raise KeyError("harmless")
    except KeyError:
        cap.logger.exception("boom")
    assert records[0].exc_info is not None
    assert records[0].exc_text is None or "harmless" in records[0].exc_text


def test_stack_info(cap: Capture) -> None:
    access_token = TOKEN  # noqa: F841 -- a frame local does not appear in stack_info, its line does
    cap.logger.info("where", stack_info=True)
    cap.logger.info("x", stack_info=False)
    assert TOKEN not in cap.text


def test_record_seen_by_several_filters_is_redacted_once(cap: Capture) -> None:
    calls = []
    inner = RedactingFilter()
    original = inner._redact

    def counting(record: logging.LogRecord, redactor: object) -> None:
        calls.append(record)
        original(record, redactor)  # type: ignore[arg-type]

    inner._redact = counting  # type: ignore[method-assign]
    cap.handler.addFilter(inner)
    cap.logger.info("a %s", f"access_token={TOKEN}")
    assert calls == []  # the logger's filter already did it
    assert TOKEN not in cap.text


def test_uvicorn_access_formatter_still_unpacks_its_arguments() -> None:
    from uvicorn.logging import AccessFormatter

    logger = logging.getLogger(f"tg-test-{uuid.uuid4().hex}")
    logger.addFilter(RedactingFilter())
    capture = Capture(logger, AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False))
    logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x?a=1&access_token={TOKEN}", "1.1", 401)
    assert capture.text.strip() == f'127.0.0.1:5000 - "GET /x?a=1&access_token={PLACEHOLDER} HTTP/1.1" 401 Unauthorized'


def test_gunicorn_atoms() -> None:
    from gunicorn.glogging import SafeAtoms

    logger = logging.getLogger(f"tg-test-{uuid.uuid4().hex}")
    logger.addFilter(RedactingFilter(default_redactor()))
    capture = Capture(logger, logging.Formatter("%(message)s"))
    enc = quote(TOKEN, safe="")
    atoms = SafeAtoms(
        {
            "h": "127.0.0.1",
            "r": f"GET /x?access_token={enc}&b=2 HTTP/1.1",
            "U": "/x",
            "q": f"access_token={enc}&b=2",
            "f": f"http://h/prev?page=1&refresh_token={TOKEN}",  # page is not a secret name
            "s": "401",
            "{authorization}i": f"Bearer {TOKEN}",
            "{proxy-authorization}i": f"Basic {TOKEN}",
            "{cookie}i": f"x=1; directus_session_token={TOKEN}",
            "{set-cookie}o": f"directus_refresh_token={TOKEN}; Path=/",
            "{http_authorization}e": f"Bearer {TOKEN}",
            "{query_string}e": f"access_token={enc}&b=2",
        }
    )
    fmt = (
        '%(h)s "%(r)s" %(U)s %(q)s "%(f)s" %(s)s %({Authorization}i)s | %({proxy-authorization}i)s | '
        "%({cookie}i)s | %({set-cookie}o)s | %({http_authorization}e)s | %({query_string}e)s | %({missing}i)s"
    )
    logger.info(fmt, atoms)
    assert capture.text.strip() == (
        f'127.0.0.1 "GET /x?access_token={PLACEHOLDER}&b=2 HTTP/1.1" /x access_token={PLACEHOLDER}&b=2 '
        f'"http://h/prev?page=1&refresh_token={PLACEHOLDER}" 401 Bearer {PLACEHOLDER} | Basic {PLACEHOLDER} | '
        f"x=1; directus_session_token={PLACEHOLDER} | directus_refresh_token={PLACEHOLDER}; Path=/ | "
        f"Bearer {PLACEHOLDER} | access_token={PLACEHOLDER}&b=2 | -"
    )
    assert atoms["{cookie}i"].endswith(TOKEN)  # gunicorn's own dict is left alone


def test_werkzeug_request_line() -> None:
    logger = logging.getLogger(f"tg-test-{uuid.uuid4().hex}")
    logger.addFilter(RedactingFilter())
    capture = Capture(logger, logging.Formatter("%(message)s"))
    logger.info('127.0.0.1 - - [22/Nov/2026 20:00:00] "%s" %s %s', f"GET /x?access_token={TOKEN} HTTP/1.1", "401", "-")
    assert capture.text.strip() == f'127.0.0.1 - - [22/Nov/2026 20:00:00] "GET /x?access_token={PLACEHOLDER} HTTP/1.1" 401 -'


texts = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


@settings(max_examples=200)
@given(
    prefix=texts,
    suffix=texts,
    where=st.sampled_from(["msg", "arg", "split", "exc"]),
    form=st.sampled_from(["?access_token=", "&refresh_token=", "; directus_session_token=", "Bearer ", "%26access_token%3D"]),
)
def test_no_record_shape_leaks(prefix: str, suffix: str, where: str, form: str) -> None:
    logger = logging.getLogger("tg-test-prop")
    if not logger.filters:
        logger.addFilter(RedactingFilter())
    capture = Capture(logger)
    secret = f"{form}{TOKEN}"
    try:
        if where == "msg":
            logger.info(prefix + secret + " " + suffix)
        elif where == "arg":
            logger.info("%s|%s|%s", prefix, secret + " ", suffix)
        elif where == "split":
            logger.info(form.replace("%", "%%") + "%s " + suffix.replace("%", "%%"), TOKEN)
        else:
            try:
                raise ValueError(prefix + secret + " " + suffix)
            except ValueError:
                logger.exception("failed")
        assert TOKEN not in capture.text
        assert capture.text.startswith(("INFO ", "ERROR "))
    finally:
        logger.removeHandler(capture.handler)


# --- installation --------------------------------------------------------------------------


def test_install_is_idempotent_and_covers_the_known_loggers() -> None:
    flt = install_log_redaction(Settings(secret=SECRET, query_params=("access_token", "jwt")))
    assert flt is redaction_filter()
    install_log_redaction(Settings(secret=SECRET))
    for name in LOGGERS:
        assert logging.getLogger(name).filters.count(flt) == 1, name
    assert logging.lastResort is not None and flt in logging.lastResort.filters
    # Names from every TokenGuard are kept.
    assert {"jwt", "access_token", "refresh_token", "directus_session_token"} <= flt.redactor.names


def test_install_reaches_handlers_child_loggers_and_flask() -> None:
    import flask.logging

    root_handler = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(root_handler)
    child = logging.getLogger(f"uvicorn.tg-child-{uuid.uuid4().hex}")
    try:
        flt = install_log_redaction()
        assert flt in root_handler.filters
        assert flt in child.filters
        assert flt in flask.logging.default_handler.filters
    finally:
        logging.getLogger().removeHandler(root_handler)


def test_filters_survive_dictconfig() -> None:
    flt = install_log_redaction()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"h": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
            "loggers": {"uvicorn.access": {"handlers": ["h"], "level": "INFO", "propagate": False}},
        }
    )
    assert flt in logging.getLogger("uvicorn.access").filters


def test_building_a_tokenguard_installs_it() -> None:
    logger = logging.getLogger("werkzeug")
    logger.removeFilter(redaction_filter())
    TokenGuard(secret=SECRET, query_params="access_token,jwt")
    assert redaction_filter() in logger.filters
    assert "jwt" in redaction_filter().redactor.names


def test_tokenguard_own_debug_logs_carry_no_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tokenguard")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        tg = TokenGuard(secret=SECRET)
        bad = mint(secret="tg-wrong-secret-Zx8Cv7Bn6Mq5Wr4Et3Yu2Io1Pa0S")
        expired = mint(exp=1)
        for token in (bad, expired, "not-a-jwt-but-a-static-token-1234"):
            outcome = tg.guard.authenticate(f"Bearer {token}", "", None)
            outcome = tg.guard.authenticate(None, f"access_token={token}", None)
            outcome = tg.guard.authenticate(None, "", f"directus_session_token={token}")
            del outcome
            assert token not in stream.getvalue()
        assert "refused" in stream.getvalue()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def test_unprintable_argument_does_not_stop_redaction() -> None:
    class Evil:
        def __str__(self) -> str:
            raise RuntimeError("no")

        __repr__ = __str__

    evil = Evil()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "x %s %s", (evil, f"access_token={TOKEN}"), None)
    assert RedactingFilter().filter(record) is True
    assert record.args == (evil, f"access_token={PLACEHOLDER}")


def test_gunicorn_atoms_not_in_the_format_are_not_touched() -> None:
    from gunicorn.glogging import SafeAtoms

    class Watched:
        touched = 0

        def __str__(self) -> str:
            Watched.touched += 1
            return f"access_token={TOKEN}"

        __repr__ = __str__

    logger = logging.getLogger(f"tg-test-{uuid.uuid4().hex}")
    logger.addFilter(RedactingFilter(default_redactor()))
    capture = Capture(logger, logging.Formatter("%(message)s"))
    atoms = SafeAtoms({"r": f"GET /?access_token={TOKEN} HTTP/1.1", "{wsgi.input}e": Watched()})
    logger.info('"%(r)s" %({X-Missing}i)s', atoms)
    assert capture.text.strip() == f'"GET /?access_token={PLACEHOLDER} HTTP/1.1" -'
    assert Watched.touched == 0


def test_install_reaches_handlers_of_any_existing_logger() -> None:
    logger = logging.getLogger(f"someapp-{uuid.uuid4().hex}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    child = logging.getLogger(logger.name + ".views")  # no handler: propagates to `handler`
    child.setLevel(logging.INFO)
    try:
        install_log_redaction()
        child.info("upstream said %s", f"Authorization: Bearer {TOKEN}")
        assert stream.getvalue() == f"upstream said Authorization: Bearer {PLACEHOLDER}\n"
    finally:
        logger.removeHandler(handler)
