"""Every failure is an answer (issue 14): exit codes agree with the README, secrets never leak,
interrupted runs say how to resume, a dead Storage server stops a run early, output files are
checked before work, loose files and NUL names are never silent."""

from __future__ import annotations

import importlib
import pkgutil
import re
import signal
import socket
import subprocess
from pathlib import Path

import anyio
import asyncpg
import orjson
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import loader
from loader import db as dbmod
from loader import embedded
from loader.cli_runtime import exit_of, exit_on, run
from loader.devtools.storage_server import Faults
from loader.errors import MEANING, ExitCode, LoaderError
from loader.redact import redact
from tests.cli_helpers import child_env, invoke, loader_argv, migrate_args, run_loader
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage, catalogue_of

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "originals/customers/"
FAST = ("--list-api", "v1", "--match", "none")


def names(folders: int, files: int = 2) -> list[str]:
    return [f"{PREFIX}c{f:04d}/IMG_{n}.jpg" for f in range(folders) for n in range(files)]


# -- exit codes ---------------------------------------------------------------------------


def _all_subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _all_subclasses(sub)
    return found


def test_exit_codes_agree_with_the_readme_table() -> None:
    for module in pkgutil.walk_packages(loader.__path__, "loader."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    table = {int(m[1]): m[2] for m in re.finditer(r"^\| (\d+) \| (.*) \|$", section, re.M)}
    assert table == {int(code): MEANING[code] for code in ExitCode}
    classes = _all_subclasses(LoaderError)
    assert len(classes) >= 10
    for cls in classes:
        assert int(cls.exit_code) in table, cls
        assert cls.exit_code != ExitCode.INTERNAL, f"{cls.__name__} would exit 1 (a bug)"
    # Every failure code (3 and up) is what some error class, or a command's result, exits with.
    used = {c.exit_code for c in classes} | {ExitCode.INCOMPLETE}
    assert {c for c in ExitCode if c >= ExitCode.BAD_INPUT} <= used


def test_a_bug_inside_a_task_group_is_named_in_one_line(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def step() -> None:
        raise KeyError("x")

    async def command() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(step)

    with pytest.raises(ExceptionGroup) as raised:
        run(command)
    assert exit_of(raised.value) == (ExitCode.INTERNAL, "internal error: KeyError: 'x'")
    monkeypatch.delenv("LOADER_DEBUG", raising=False)
    with pytest.raises(SystemExit) as done:
        exit_on(raised.value)
    assert done.value.code == ExitCode.INTERNAL
    assert capsys.readouterr().err == "internal error: KeyError: 'x' (LOADER_DEBUG=1 for details)\n"
    monkeypatch.setenv("LOADER_DEBUG", "1")
    with pytest.raises(SystemExit):
        exit_on(raised.value)
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'x'" in err


# -- redaction ------------------------------------------------------------------------------

SECRET = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=24
)
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["postgresql", "postgres", "http", "https"]),
    user=WORD,
    password=SECRET,
    host=WORD,
    port=st.one_of(st.none(), st.integers(0, 99999)),
    path=st.lists(WORD, max_size=3),
    param=st.sampled_from(["password", "apikey", "token", "key", "sslpassword", "access_token"]),
    # (an '@' in a query value makes the host look like part of the password: masked too)
    query_secret=SECRET.filter(lambda s: not set(s) & set("&;,'\"@")),
    around=st.sampled_from(["{}", "cannot connect to {}: refused", "'{}'", "url={} failed"]),
)
def test_redact_hides_every_password_and_key(
    scheme: str, user: str, password: str, host: str, port: int | None, path: list[str],
    param: str, query_secret: str, around: str,
) -> None:  # fmt: skip
    netloc = f"{host}:{port}" if port is not None else host
    url = f"{scheme}://{user}:{password}@{netloc}/{'/'.join(path)}?x=1&{param}={query_secret}"
    text = around.format(url)
    public = around.format(f"{scheme}://{user}:@{netloc}/{'/'.join(path)}?x=1&{param}=")
    assume(password not in public and query_secret not in public)
    shown = redact(text)
    assert password not in shown
    assert query_secret not in shown
    assert host in shown  # still says where


@settings(max_examples=100, deadline=None)
@given(password=SECRET.filter(lambda s: "'" not in s and "\\" not in s), host=WORD)
def test_redact_hides_keyword_dsn_passwords(password: str, host: str) -> None:
    for dsn in (f"host={host} password={password} dbname=x",
                f"host={host} password='{password} with space' dbname=x"):  # fmt: skip
        rest = dsn.replace(f"password={password}", "").replace(f"'{password}", "")
        assume(password not in rest)
        assert password not in redact(dsn)


async def _loader_tables_text(db: asyncpg.Connection) -> str:
    parts = []
    for table in ("runs", "folders", "row_failures", "journal"):
        rows = await db.fetch(f"SELECT row_to_json(t)::text AS j FROM loader.{table} AS t")
        parts += [r["j"] for r in rows]
    return "\n".join(parts)


async def test_no_secret_form_reaches_output_reports_logs_or_tables(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    url = await start_storage(catalogue_of(names(3)))
    host_db = db_url.split("://", 1)[1]  # the test server trusts local connections
    user, rest = host_db.split("@", 1)
    secrets = ["UrlPassw0rd", "QueryPassw0rd", "EnvPassw0rd", "Slash/Passw0rd", "KwDsnPassw0rd",
               "UserInfoPw0rd", "ApiKeyInQuery0", STORAGE_KEY]  # fmt: skip
    runs = [
        # (database URL, storage URL, extra env) - the first three connect and migrate
        (f"postgresql://{user}:UrlPassw0rd@{rest}", url, {}),
        (f"postgresql://{user}@{rest}?password=QueryPassw0rd", url, {}),
        (db_url, url, {"PGPASSWORD": "EnvPassw0rd"}),
        (f"postgresql://{user}:Slash/Passw0rd@{rest}", url, {}),
        (f"host=127.0.0.1 user={user} password=KwDsnPassw0rd dbname=x", url, {}),
        (db_url, url.replace("http://", "http://admin:UserInfoPw0rd@"), {}),
        (db_url, f"{url}/?apikey=ApiKeyInQuery0", {}),
    ]
    seen = []
    for i, (database_url, storage_url, env) in enumerate(runs):
        report, log = tmp_path / f"r{i}.json", tmp_path / f"l{i}.jsonl"
        args = migrate_args(storage_url, database_url, *FAST, "--report", str(report),
                            "--log-file", str(log))  # fmt: skip
        with anyio.fail_after(120):
            done = await anyio.run_process(loader_argv(*args), check=False,
                                           env={**child_env(), **env},
                                           stdin=subprocess.DEVNULL)  # fmt: skip
        out, err = done.stdout.decode(), done.stderr.decode()
        assert done.returncode in (0, 3, 4), err
        assert "Traceback" not in err
        seen += [out, err, log.read_text() if log.exists() else ""]
        seen.append(report.read_text() if report.exists() else "")
        if i < 3:
            assert done.returncode == 0, err
        else:
            assert done.returncode in (3, 4), err
    seen.append(await _loader_tables_text(db))
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 6
    everything = "\n".join(seen)
    for secret in secrets:
        assert secret not in everything, secret


# -- the "Why" list: no command exits 1 ---------------------------------------------------


@pytest.fixture
def busy_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


WHY_CASES = {
    # A URL that cannot be parsed, or a keyword DSN, is bad input (3), not a connection failure.
    "port 99999": (["runs", "--database-url", "postgresql://u:pw@127.0.0.1:99999/db"], 3),
    "keyword DSN": (["runs", "--database-url", "host=127.0.0.1 password=kwSecret1"], 3),
    "unencoded slash": (["runs", "--database-url", "postgresql://u:pa/ss1@127.0.0.1:1/d"], 3),
    "run id beyond int64": (["rollback", "99999999999999999999", "--database-url", "{db}"], 2),
    "resume id beyond int64": (["migrate", "--resume", "99999999999999999999"], 2),
    "decision id beyond int64": (
        ["match", "apply", "{huge_csv}", "--folders", "{folders}", "--database-url", "{db}"],
        3,
    ),
    "decision for a folder not in the bucket": (
        ["match", "apply", "{csv}", "--folders", "{folders}", "--database-url", "{db}"],
        3,
    ),
    "log file on a full disk": (
        [
            "migrate",
            "--log-file",
            "/dev/full",
            "--database-url",
            "{db}",
            "--storage-url",
            "{storage}",
            "--key",
            STORAGE_KEY,
        ],
        2,
    ),
    "report is a directory": (["verify", "--report", "{tmp}", "--database-url", "{db}"], 2),
    "report in an unwritable folder": (["migrate", "--report", "/proc/x.json"], 2),
    "storage serve on a port in use": (
        ["storage", "serve", "--root", "{tmp}", "--key", "k", "--port", "{busy}"],
        3,
    ),
    "storage URL with credentials": (
        ["scan", "--storage-url", "http://u:pw1234@127.0.0.1:1", "--key", "k"],
        3,
    ),
    "storage URL with apikey": (
        ["scan", "--storage-url", "http://127.0.0.1:1/?apikey=abcdef", "--key", "k"],
        3,
    ),
    "verify with the table missing": (
        [
            "verify",
            "--database-url",
            "{nodb}",
            "--storage-url",
            "{storage}",
            "--key",
            STORAGE_KEY,
            "--bucket",
            STORAGE_BUCKET,
        ],
        5,
    ),
}


@pytest.mark.parametrize("case", list(WHY_CASES))
async def test_no_command_exits_1_on_the_issues_cases(
    case: str, start_storage: StartStorage, db_url: str, make_database, tmp_path: Path,
    busy_port: int,
) -> None:  # fmt: skip
    args, expected = WHY_CASES[case]
    folders = tmp_path / "folders.txt"
    folders.write_text("c0000\n")
    huge_csv, csv = tmp_path / "huge.csv", tmp_path / "unknown.csv"
    huge_csv.write_text("folder,decision\nc0000,99999999999999999999\n")
    csv.write_text("folder,decision\nnot-in-bucket,1\n")
    values = {"db": db_url, "tmp": str(tmp_path), "huge_csv": str(huge_csv),
              "csv": str(csv), "folders": str(folders), "busy": str(busy_port)}  # fmt: skip
    # The second database and the Storage server only for the cases that name them.
    if any("{nodb}" in a for a in args):
        values["nodb"] = await make_database()
        conn = await asyncpg.connect(values["nodb"])
        await conn.execute("DROP TABLE image_assets")
        await conn.close()
    if any("{storage}" in a for a in args):
        values["storage"] = await start_storage(catalogue_of(names(2)))
    done = await run_loader(*(a.format(**values) for a in args))
    assert done.code == expected, done.err
    assert "Traceback" not in done.err and "internal error" not in done.err
    lines = [line for line in done.err.splitlines() if "Error" in line]
    assert len(lines) == 1, done.err
    for secret in ("kwSecret1", "pa/ss1", "pw1234", "abcdef"):
        assert secret not in done.err


# -- interrupted runs ---------------------------------------------------------------------


async def _wait_for_run(db: asyncpg.Connection, child: anyio.abc.Process) -> int:
    with anyio.fail_after(60):
        while not await db.fetchval(
            "SELECT count(*) FROM loader.folders WHERE state = 'done'"
        ):  # fmt: skip
            assert child.returncode is None, "the run finished before it could be stopped"
            await anyio.sleep(0.05)
    return await db.fetchval("SELECT max(run_id) FROM loader.runs")


async def _runs_status(db_url: str, run_id: int) -> str:
    # In-process (the same command, its parsing and output): what is checked here is the
    # run's recorded status, not the process (the tests around it run the loader as one).
    listed = await invoke("runs", "--database-url", db_url)
    assert listed.code == 0, listed.err
    row = next(line for line in listed.out.splitlines() if re.match(rf"\W*{run_id}\b", line))
    return row


async def _slow_run(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> tuple[str, anyio.abc.Process, int, Faults]:
    """A migrate child slow enough to be stopped midway: the Storage URL, it, its run, and
    the server's latency (read at each request: set `latency_ms = 0` once the child stopped,
    so the resume that follows need not be slow)."""
    latency = Faults(latency_ms=60)
    url = await start_storage(catalogue_of(names(40)), faults=latency)
    args = migrate_args(url, db_url, *FAST, "--list-concurrency", "2", "--batch-size", "2")
    child = await anyio.open_process(loader_argv(*args), env=child_env(),
                                     stdin=subprocess.DEVNULL)  # fmt: skip
    return url, child, await _wait_for_run(db, child), latency


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_names_the_run_and_its_resume_command(
    signum: signal.Signals, start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    url, child, run_id, latency = await _slow_run(start_storage, db, db_url)
    child.send_signal(signum)
    with anyio.fail_after(30):
        await child.wait()
    latency.latency_ms = 0
    err = b"".join([chunk async for chunk in child.stderr]).decode() if child.stderr else ""
    assert child.returncode == ExitCode.ABORTED, err
    assert f"run {run_id}" in err and f"loader migrate --resume {run_id}" in err
    assert "interrupted" in await _runs_status(db_url, run_id)
    # no --force needed to resume it, and it finishes every folder
    resumed = await run_loader(*migrate_args(url, db_url, *FAST, "--resume", str(run_id)))
    assert resumed.code == 0, resumed.err
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 80


async def test_an_interrupted_run_rolls_back_without_force(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str
) -> None:
    _, child, run_id, _ = await _slow_run(start_storage, db, db_url)
    child.send_signal(signal.SIGKILL)  # no chance to mark anything: still 'running'
    await child.wait()
    assert await db.fetchval("SELECT status FROM loader.runs WHERE run_id = $1", run_id) in (
        "running", "aborted",
    )  # fmt: skip
    assert "interrupted" in await _runs_status(db_url, run_id)
    undone = await run_loader("rollback", str(run_id), "--database-url", db_url)
    assert undone.code == 0, undone.err
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 0


async def test_database_lost_mid_run_then_resumed_to_the_same_table(
    start_storage: StartStorage, pg_server_url: str, db: asyncpg.Connection, db_url: str
) -> None:
    url, child, run_id, latency = await _slow_run(start_storage, db, db_url)
    name = db_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(pg_server_url)
    try:
        # The database goes away for the loader: connections dropped, new ones refused.
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()", name,
        )  # fmt: skip
        with anyio.fail_after(90):
            await child.wait()
        err = b"".join([chunk async for chunk in child.stderr]).decode() if child.stderr else ""
        assert child.returncode == ExitCode.ABORTED, err
        assert "Traceback" not in err and "ExceptionGroup" not in err
        assert f"loader migrate --resume {run_id}" in err
        latency.latency_ms = 0
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
    conn = await asyncpg.connect(db_url)
    try:
        assert "interrupted" in await _runs_status(db_url, run_id)
        resumed = await run_loader(*migrate_args(url, db_url, *FAST, "--resume", str(run_id)))
        assert resumed.code == 0, resumed.err
        assert await conn.fetchval("SELECT count(*) FROM image_assets") == 80
        assert await conn.fetchval(
            "SELECT count(*) FROM loader.journal WHERE run_id = $1 AND action = 'insert'", run_id
        ) == 80  # fmt: skip
    finally:
        await conn.close()


async def test_embedded_server_stopped_mid_run_then_resumed_to_the_same_table(
    start_storage: StartStorage,
) -> None:
    """The issue's own case: `pg_ctl stop -m fast` of the database during migrate."""
    server = "stop-test-pg"
    latency = Faults(latency_ms=60)  # read at each request: 0 once the child stopped
    url = await start_storage(catalogue_of(names(40)), faults=latency)
    db_url = (await anyio.to_thread.run_sync(
        lambda: embedded.ensure_running(server, fast_unsafe=True))).url()  # fmt: skip
    try:
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute("DROP SCHEMA IF EXISTS loader CASCADE")
            await conn.execute("DROP TABLE IF EXISTS image_assets, customers CASCADE")
            await dbmod.init_schema(conn, demo_schema=True)
            args = migrate_args(url, db_url, *FAST, "--list-concurrency", "2",
                                "--batch-size", "2")  # fmt: skip
            child = await anyio.open_process(loader_argv(*args), env=child_env(),
                                             stdin=subprocess.DEVNULL)  # fmt: skip
            run_id = await _wait_for_run(conn, child)
        finally:
            await conn.close()
        await anyio.to_thread.run_sync(lambda: embedded.stop(server))
        with anyio.fail_after(90):
            await child.wait()
        err = b"".join([chunk async for chunk in child.stderr]).decode() if child.stderr else ""
        assert child.returncode == ExitCode.ABORTED, err
        assert "Traceback" not in err and "ExceptionGroup" not in err
        assert f"loader migrate --resume {run_id}" in err
        latency.latency_ms = 0
        # Back up (on a new port): the run is interrupted, and resuming finishes it.
        db_url = (await anyio.to_thread.run_sync(
            lambda: embedded.ensure_running(server, fast_unsafe=True))).url()  # fmt: skip
        assert "interrupted" in await _runs_status(db_url, run_id)
        resumed = await run_loader(*migrate_args(url, db_url, *FAST, "--resume", str(run_id)))
        assert resumed.code == 0, resumed.err
        conn = await asyncpg.connect(db_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM image_assets") == 80
            assert await conn.fetchval(
                "SELECT count(*) FROM loader.journal WHERE run_id = $1 AND action = 'insert'",
                run_id,
            ) == 80  # fmt: skip
        finally:
            await conn.close()
    finally:
        await anyio.to_thread.run_sync(lambda: embedded.stop(server))


# -- a dead Storage server ----------------------------------------------------------------


async def _dying_storage(folders: int, attempts: list[int]) -> tuple[str, anyio.abc.TaskGroup]:
    """A Storage server that answers the bucket and the top-level listing, then dies: every
    later connection is accepted and dropped at once. Connections after death are counted."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    top = orjson.dumps({"hasNext": False, "objects": [],
                        "folders": [{"key": f"c{f:04d}", "name": f"{PREFIX}c{f:04d}/"}
                                    for f in range(folders)]})  # fmt: skip
    bucket = orjson.dumps({"id": STORAGE_BUCKET, "name": STORAGE_BUCKET, "public": True})
    dead = anyio.Event()

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            if dead.is_set():
                attempts[0] += 1
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1]) if (
                b"content-length" in head.lower()) else 0  # fmt: skip
            while len(body) < length:
                body += await stream.receive()
            payload = bucket if head.startswith(b"GET") else top
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(payload), payload))  # fmt: skip
            if b"list-v2" in head and b'"with_delimiter":true' in body:
                dead.set()

    async def serve(task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        await listener.serve(handle)

    return f"http://127.0.0.1:{port}", serve


@pytest.mark.parametrize("folders", [100, 1000])
async def test_a_dead_storage_server_stops_the_run_early(
    folders: int, db: asyncpg.Connection, db_url: str
) -> None:
    attempts = [0]
    url, serve = await _dying_storage(folders, attempts)
    concurrency, retries = 4, 3
    async with anyio.create_task_group() as tg:
        await tg.start(serve)
        done = await run_loader(*migrate_args(
            url, db_url, "--list-api", "v2", "--match", "none", "--list-concurrency",
            str(concurrency), "--retries", str(retries)))  # fmt: skip
        tg.cancel_scope.cancel()
    assert done.code == ExitCode.STORAGE_UNREACHABLE, done.err
    assert "looks down" in done.err and "--resume" in done.err
    # At most (limit + concurrency) folders are tried, each with its retries: a bound that
    # does not depend on the folder count.
    limit = concurrency + 1
    print(f"dead Storage server, {folders} folders: {attempts[0]} connection attempts")
    assert 0 < attempts[0] <= (limit + concurrency) * retries
    run_id = await db.fetchval("SELECT max(run_id) FROM loader.runs")
    assert await db.fetchval("SELECT count(*) FROM loader.folders WHERE run_id = $1",
                             run_id) == folders  # fmt: skip
    assert "interrupted" in await _runs_status(db_url, run_id)


# -- output files, loose files, NUL names -------------------------------------------------


@pytest.mark.parametrize("target", ["/dev/full", "dir", "link-to-device", "/proc/r.json"])
async def test_an_unusable_output_path_is_refused_before_any_row(
    target: str, start_storage: StartStorage, db: asyncpg.Connection, db_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    url = await start_storage(catalogue_of(names(3)))
    path = {"dir": tmp_path, "link-to-device": tmp_path / "link.json"}.get(target, Path(target))
    if target == "link-to-device":
        path.symlink_to("/dev/null")
    for option in ("--report", "--log-file"):
        done = await invoke(*migrate_args(url, db_url, *FAST, option, str(path)))
        assert done.code == ExitCode.USAGE, done.err
        assert str(path) in done.err
    assert await db.fetchval("SELECT count(*) FROM loader.runs") == 0
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 0
    assert Path("/dev/null").is_char_device()


async def test_loose_files_are_named_by_scan_migrate_and_verify(
    start_storage: StartStorage, db_url: str, tmp_path: Path
) -> None:
    url = await start_storage(catalogue_of([*names(2), f"{PREFIX}stray.jpg", f"{PREFIX}a.txt"]))
    common = ("--storage-url", url, "--key", STORAGE_KEY, "--bucket", STORAGE_BUCKET,
              "--database-url", db_url)  # fmt: skip
    scanned = await invoke("scan", *common)
    assert scanned.code == 0, scanned.err
    assert f"{PREFIX}stray.jpg" in scanned.out
    report = tmp_path / "m.json"
    migrated = await invoke("migrate", *common, "--match", "none", "--report", str(report))
    assert migrated.code == 0, migrated.err
    assert f"{PREFIX}stray.jpg" in migrated.err
    assert orjson.loads(report.read_bytes())["loose_files"] == [f"{PREFIX}stray.jpg"]
    checked = await invoke("verify", *common, "--report", str(report))
    assert checked.code == 0, checked.err
    assert f"{PREFIX}stray.jpg" in checked.out
    assert orjson.loads(report.read_bytes())["loose_files"] == [f"{PREFIX}stray.jpg"]


async def test_a_nul_byte_name_is_a_failed_row_and_every_resume_finishes(
    start_storage: StartStorage, db: asyncpg.Connection, db_url: str, tmp_path: Path
) -> None:
    bad = f"{PREFIX}c0000/bad\x00name.jpg"
    url = await start_storage(catalogue_of([*names(3), bad]))
    report = tmp_path / "r.json"
    first = await invoke(*migrate_args(url, db_url, *FAST, "--report", str(report)))
    assert first.code == ExitCode.INCOMPLETE, first.err
    body = orjson.loads(report.read_bytes())
    assert [(r["file_path"], "NUL" in r["reason"]) for r in body["failed_rows"]] == [
        (bad.replace("\x00", "\\0"), True)
    ]
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 6
    run_id = body["run_id"]
    for _ in range(2):
        again = await invoke(*migrate_args(url, db_url, *FAST, "--resume", str(run_id)))
        assert again.code == ExitCode.INCOMPLETE, again.err
        assert "Traceback" not in again.err
    assert await db.fetchval("SELECT count(*) FROM image_assets") == 6
