"""``load_settings``: the old sipum flags, cinema_db.conf lookup, env, service flags."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sipum import __version__
from sipum.config import (
    DEBUG_LOGGERS,
    ServiceSettings,
    cli,
    exit_on_config_error,
    load_settings,
    run_cli,
)
from sipum.errors import ConfigError

DEFAULT_LOOKUP = cli.CINEMA_DB_CONF_PATHS


def load(
    argv: list[str], cls: type[ServiceSettings] = ServiceSettings, **kw: Any
) -> ServiceSettings:
    return load_settings(cls, argv, prog="sipum-test", description="test", **kw)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No SIPUM_* from the outside, no real cinema_db.conf, debug loggers restored."""
    import os

    for name in list(os.environ):
        if name.startswith("SIPUM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        cli, "CINEMA_DB_CONF_PATHS", (Path("cinema_db.conf"), tmp_path / "etc" / "cinema_db.conf")
    )
    levels = {name: logging.getLogger(name).level for name in DEBUG_LOGGERS.values()}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_defaults() -> None:
    s = load([])
    assert s.database_url == "postgresql://postgres@127.0.0.1:5432/sipum"
    assert s.nats_url == "nats://127.0.0.1:4222"
    assert s.s3_endpoint is None and not s.uses_s3 and s.blob_root == "./var/blobs"
    assert s.domain == "example.com" and s.foreground and s.debug == []
    assert not s.logs_as_json


def test_dash_D_accepts_old_and_new_forms() -> None:
    assert (
        load(["-D", "sql://vm:pw@db:5433/cinema"]).database_url
        == "postgresql://vm:pw@db:5433/cinema"
    )
    assert load(["-D", "postgres://x@y/z"]).database_url == "postgres://x@y/z"
    with pytest.raises(ConfigError) as info:
        load(["-D", "sql://vm:pw@db:x/cinema"])
    assert info.value.setting == "database_url" and "port" in info.value.problem


def test_dash_f_reads_first_url_line(tmp_path: Path) -> None:
    conf = tmp_path / "my.conf"
    conf.write_text("# the database\n\n  sql://vm:pw@db:5433/cinema  \n")
    assert load(["-f", str(conf)]).database_url == "postgresql://vm:pw@db:5433/cinema"
    conf.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="holds no database URL"):
        load(["-f", str(conf)])
    conf.write_text("sql://vm:pw@db/\n")
    with pytest.raises(ConfigError) as info:
        load(["-f", str(conf)])
    assert info.value.setting == "database_url" and str(conf) in info.value.problem


def test_dash_f_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(["-f", str(tmp_path / "missing.conf")])
    assert info.value.setting == "-f" and "No such file or directory" in info.value.problem
    with pytest.raises(ConfigError, match="Is a directory"):
        load(["-f", str(tmp_path)])


def test_cinema_db_conf_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    monkeypatch.setenv("SIPUM_DATABASE_URL", "postgresql://env@h/envdb")
    assert load([]).database_url == "postgresql://env@h/envdb"  # no file: the environment
    (etc / "cinema_db.conf").write_text("sql://etc@h/etcdb\n")
    assert load([]).database_url == "postgresql://etc@h/etcdb"  # /etc beats the environment
    Path("cinema_db.conf").write_text("sql://cwd@h/cwddb\n")
    assert load([]).database_url == "postgresql://cwd@h/cwddb"  # ./ beats /etc
    other = tmp_path / "other.conf"
    other.write_text("postgresql://f@h/fdb")
    assert load(["-f", str(other)]).database_url == "postgresql://f@h/fdb"  # -f beats both
    assert load(["-D", "postgresql://d@h/ddb"]).database_url == "postgresql://d@h/ddb"


def test_default_lookup_paths_are_the_old_ones() -> None:
    # The autouse fixture replaces them in each test; this is what services use.
    assert DEFAULT_LOOKUP == (Path("cinema_db.conf"), Path("/etc/cinema_db.conf"))


def test_debug_categories_set_logger_levels() -> None:
    for name in DEBUG_LOGGERS.values():
        logging.getLogger(name).setLevel(logging.NOTSET)
    s = load(["-d", "sql", "-d", "sdp", "-d", "sql"])
    assert s.debug == ["sql", "sdp"]
    assert logging.getLogger("sipum.sql").level == logging.DEBUG
    assert logging.getLogger("sipum.sdp").level == logging.DEBUG
    assert logging.getLogger("sipum.net").level == logging.NOTSET
    assert logging.getLogger("sipum.sql.migrate").getEffectiveLevel() == logging.DEBUG
    load(["-d", "all"])
    assert all(logging.getLogger(n).level == logging.DEBUG for n in DEBUG_LOGGERS.values())


def test_debug_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPUM_DEBUG", "net, misc")
    assert load([]).debug == ["net", "misc"]
    monkeypatch.setenv("SIPUM_DEBUG", "net,bogus")
    with pytest.raises(ConfigError) as info:
        load([])
    assert info.value.setting == "debug" and "bogus" in info.value.problem


def test_bad_debug_flag_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load(["-d", "bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sipum-test: error: argument -d")


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load(["-v"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"sipum-test {__version__}\n"
    with pytest.raises(SystemExit) as info:
        load(["-h"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("-D URL", "-f FILE", "-d CATEGORY", "-X", "-v", "-h"):
        assert flag in out


def test_foreground_flag_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPUM_FOREGROUND", "false")
    detached = load([])
    assert not detached.foreground and detached.logs_as_json
    assert load(["-X"]).foreground


def test_service_specific_flags() -> None:
    class NotifierSettings(ServiceSettings):
        send_email: bool = True

    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-e", action="store_true", help="do not send e-mail")

    def apply(args: argparse.Namespace, overrides: dict[str, Any]) -> None:
        if args.e:
            overrides["send_email"] = False

    s = load(["-e"], NotifierSettings, add_arguments=add, apply_arguments=apply)
    assert isinstance(s, NotifierSettings) and s.send_email is False
    assert load([], NotifierSettings, add_arguments=add, apply_arguments=apply).send_email


def test_env_validation_error_names_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPUM_HTTP_PORT", "99999")
    monkeypatch.setenv("SIPUM_NATS_URL", "http://x")
    with pytest.raises(ConfigError) as info:
        load([])
    assert info.value.setting == "nats_url" or info.value.setting == "http_port"
    assert "http_port" in str(info.value) and "nats_url" in str(info.value)


def test_secrets_and_password_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPUM_SECRET_KEY", "topsecretkey")
    monkeypatch.setenv("SIPUM_S3_SECRET_KEY", "s3secretkey")
    s = load(["-D", "postgresql://u:dbpassword@h/d"])
    text = repr(s) + str(s) + str(s.model_dump())
    assert "topsecretkey" not in text and "s3secretkey" not in text
    assert "dbpassword" not in repr(s) and "dbpassword" not in str(s)
    assert s.secret_key.get_secret_value() == "topsecretkey"


def test_exit_on_config_error_prints_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info, exit_on_config_error("sipum-x"):
        raise ConfigError("database_url", "cannot connect to h:1:\nConnection refused")
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "sipum-x: error: database_url: cannot connect to h:1: Connection refused\n"
    )


def test_run_cli_exit_status_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    async def ok() -> int:
        return 3

    with pytest.raises(SystemExit) as info:
        run_cli(ok, prog="sipum-x")
    assert info.value.code == 3

    async def bad() -> None:
        raise ConfigError("s3_endpoint", "bad credentials")

    with pytest.raises(SystemExit) as info:
        run_cli(bad, prog="sipum-x")
    assert info.value.code == 2
    assert capsys.readouterr().err == "sipum-x: error: s3_endpoint: bad credentials\n"

    def loads_settings_first() -> Any:
        load(["-D", "sql://nope"])
        raise AssertionError("not reached")

    with pytest.raises(SystemExit) as info:
        run_cli(loads_settings_first, prog="sipum-x")
    assert info.value.code == 2
    assert "database_url: malformed sql:// URL" in capsys.readouterr().err
