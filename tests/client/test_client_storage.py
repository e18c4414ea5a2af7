"""AuthData and the client storages: round trips, atomic 0600 files, no token in any output."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenguard.client import AuthData, FileStorage, MemoryStorage, TokenStorage

TOKEN = "eyJhbGciOiJIUzI1NiJ9.secret-access.sig"
REFRESH = "r" * 64

tokens = st.none() | st.text(min_size=1, max_size=80)
times = st.none() | st.integers(min_value=0, max_value=2**53)
auth_data = st.builds(AuthData, tokens, tokens, times, times)


def test_protocol() -> None:
    assert isinstance(MemoryStorage(), TokenStorage)
    assert isinstance(FileStorage("x"), TokenStorage)


def test_repr_never_shows_tokens(tmp_path: Path) -> None:
    data = AuthData(TOKEN, REFRESH, 900_000, 1)
    for text in (repr(data), str(data), repr(MemoryStorage(data)), repr(FileStorage(tmp_path / "f"))):
        assert TOKEN not in text and REFRESH not in text
    assert repr(AuthData()) == "AuthData(access_token=None, refresh_token=None, expires=None, expires_at=None)"


def test_memory_storage() -> None:
    store = MemoryStorage()
    assert store.get() is None
    data = AuthData(TOKEN, REFRESH, 900_000, 123)
    store.set(data)
    assert store.get() is data
    store.set(AuthData())
    assert store.get() is None


def test_file_storage_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "login.json"
    store = FileStorage(path)
    assert store.get() is None
    data = AuthData(TOKEN, REFRESH, 900_000, 1_800_000_000_000)
    store.set(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {
        "access_token": TOKEN, "refresh_token": REFRESH, "expires": 900_000, "expires_at": 1_800_000_000_000,
    }
    # A new storage (a new run) reads the same login.
    assert FileStorage(path).get() == data
    # No temporary file is left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["login.json"]
    # Logging out deletes the file; doing it twice is fine.
    store.set(AuthData())
    assert not path.exists() and store.get() is None
    store.set(AuthData())


def test_file_storage_expands_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    data = AuthData(TOKEN, REFRESH, 900_000, 1)
    store = FileStorage("~/.myapp/login.json")
    assert store.path == home / ".myapp" / "login.json"
    store.set(data)
    assert FileStorage(home / ".myapp" / "login.json").get() == data
    assert FileStorage(Path("~") / ".myapp" / "login.json").get() == data
    assert list(work.iterdir()) == []  # no folder literally named "~"


def test_file_storage_replaces_atomically_and_keeps_0600(tmp_path: Path) -> None:
    path = tmp_path / "login.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    store = FileStorage(path)
    store.set(AuthData(TOKEN, None, None, None))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get() == AuthData(TOKEN)


def test_file_storage_concurrent_writers_never_tear(tmp_path: Path) -> None:
    path = tmp_path / "login.json"
    store = FileStorage(path)
    values = [AuthData(f"a{i}" * 50, f"r{i}" * 30, i, i) for i in range(20)]
    errors: list[BaseException] = []

    def write(data: AuthData) -> None:
        try:
            for _ in range(5):
                store.set(data)
                assert FileStorage(path).get() in values
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.get() in values
    assert sorted(p.name for p in tmp_path.iterdir()) == ["login.json"]


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b"null", b"\xff\xfe", b"{" * 10_000, b" " * 70_000],
)
def test_unreadable_files_read_as_logged_out(tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "login.json"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with caplog.at_level(logging.WARNING, logger="tokenguard.client"):
        assert FileStorage(path).get() is None
    assert "not a tokenguard login" in caplog.text


def test_a_file_without_tokens_is_logged_out(tmp_path: Path) -> None:
    path = tmp_path / "login.json"
    path.write_text('{"access_token": 5, "refresh_token": "", "expires": 3}')
    assert FileStorage(path).get() is None


def test_world_readable_file_warns_without_the_token(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "login.json"
    path.write_text(json.dumps(AuthData(TOKEN, REFRESH).to_dict()))
    os.chmod(path, 0o644)
    with caplog.at_level(logging.DEBUG, logger="tokenguard.client"):
        assert FileStorage(path).get() == AuthData(TOKEN, REFRESH)
    assert "0600" in caplog.text
    assert TOKEN not in caplog.text and REFRESH not in caplog.text


def test_set_failure_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "login.json"

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        FileStorage(path).set(AuthData(TOKEN))
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(auth_data)
def test_dict_round_trip(data: AuthData) -> None:
    back = AuthData.from_dict(json.loads(json.dumps(data.to_dict())))
    # Empty strings are not tokens: they read back as None.
    assert back == AuthData(data.access_token or None, data.refresh_token or None, data.expires, data.expires_at)


@settings(max_examples=100, deadline=None)
@given(auth_data)
def test_file_round_trip(tmp_path_factory: pytest.TempPathFactory, data: AuthData) -> None:
    path = tmp_path_factory.mktemp("fs") / "login.json"
    store = FileStorage(path)
    store.set(data)
    expected = AuthData(data.access_token or None, data.refresh_token or None, data.expires, data.expires_at)
    assert store.get() == (None if expected.empty else expected)
    assert path.exists() == (not data.empty)


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=20,
    )
    | st.fixed_dictionaries(
        {},
        optional={
            "access_token": st.none() | st.integers() | st.text(max_size=5) | st.booleans(),
            "refresh_token": st.none() | st.integers() | st.text(max_size=5),
            "expires": st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=3),
            "expires_at": st.none() | st.booleans() | st.floats() | st.integers(),
        },
    )
)
def test_from_dict_never_raises_and_types_hold(value: object) -> None:
    data = AuthData.from_dict(value)
    if data is None:
        assert not isinstance(value, dict)
        return
    for token in (data.access_token, data.refresh_token):
        assert token is None or (isinstance(token, str) and token)
    for number in (data.expires, data.expires_at):
        assert number is None or (type(number) is int)
