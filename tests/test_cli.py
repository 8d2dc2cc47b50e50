"""The command line as a user meets it: every command has --help, and bad input gives one
clean line and a distinct exit code, never a traceback, never a secret."""

from __future__ import annotations

import click
import orjson
import pytest
from click.testing import CliRunner

from loader.cli import cli
from loader.errors import ExitCode
from tests.cli_helpers import migrate_args, run_loader
from tests.sample import media_names, sample_catalogue
from tests.storage_fixtures import STORAGE_BUCKET, STORAGE_KEY, StartStorage, fake_jwt


def every_command(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and group of `loader`, as argument lists (the tree, walked)."""
    found = [list(path)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += every_command(command, (*path, name))
        else:
            found.append([*path, name])
    return found


def assert_one_clean_line(err: str, *secrets: str) -> None:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, err
    for secret in secrets:
        assert secret not in err


@pytest.mark.parametrize("command", every_command(), ids=lambda c: " ".join(c) or "loader")
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    done = CliRunner().invoke(cli, [*command, "--help"])
    assert done.exit_code == 0, done.output
    assert "Usage:" in done.output
    assert "Example" in done.output


def command_at(path: list[str]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("command", every_command(), ids=lambda c: " ".join(c) or "loader")
def test_help_shows_each_example_on_a_line_of_its_own(command: list[str]) -> None:
    """click joins a paragraph's lines and wraps it to the terminal: an example block needs
    `\\b` to stay one command per line (checked at a narrow terminal, where wrapping shows)."""
    doc = command_at(command).help or ""
    lines = [line.strip() for line in doc.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("Example"))
    examples = [line for line in lines[start + 1 :] if line and line != "\b"]
    assert examples, doc
    done = CliRunner().invoke(cli, [*command, "--help"], terminal_width=60)
    shown = [line.strip() for line in done.output.splitlines()]
    for example in examples:
        assert example in shown, (example, done.output)


def test_top_level_help_lists_every_command() -> None:
    done = CliRunner().invoke(cli, ["--help"])
    for name in ("db", "scan", "match", "migrate", "runs", "rollback", "verify", "storage", "demo",
                 "backup", "restore"):  # fmt: skip
        assert f"  {name} " in done.output, name
    version = CliRunner().invoke(cli, ["--version"])
    assert version.output.strip().startswith("loader, version")


def scan_args(url: str, key: str = STORAGE_KEY, bucket: str = STORAGE_BUCKET) -> list[str]:
    return ["scan", "--storage-url", url, "--key", key, "--bucket", bucket, "--retries", "2"]


async def test_scan_json_lines(start_storage: StartStorage) -> None:
    url = await start_storage(sample_catalogue())
    done = await run_loader(*scan_args(url), "--json")
    assert done.code == 0, done.err
    objects = [orjson.loads(line) for line in done.out.splitlines()]
    assert {o["path"] for o in objects if o["kind"] in ("image", "video")} == media_names()
    assert set(objects[0]) == {"path", "size", "mimetype", "kind", "created_at", "updated_at"}


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong key", ExitCode.STORAGE_AUTH),
        ("unknown bucket", ExitCode.BUCKET_NOT_FOUND),
        ("anon key", ExitCode.NOT_SERVICE_ROLE),
        ("empty prefix", ExitCode.EMPTY_LISTING),
        ("unreachable", ExitCode.STORAGE_UNREACHABLE),
    ],
)
async def test_scan_errors_have_distinct_exit_codes(
    start_storage: StartStorage, case: str, code: ExitCode
) -> None:
    anon = fake_jwt("anon")
    url = await start_storage(sample_catalogue(), anon_key=anon)
    args = {
        "wrong key": scan_args(url, key="sb-wrong-secret"),
        "unknown bucket": scan_args(url, bucket="nope"),
        "anon key": scan_args(url, key=anon),
        "empty prefix": [*scan_args(url), "--prefix", "no/such/prefix"],
        "unreachable": scan_args("http://127.0.0.1:9"),
    }[case]
    done = await run_loader(*args)
    assert done.code == code, done.err
    assert_one_clean_line(done.err, "sb-wrong-secret", STORAGE_KEY)


async def test_wrong_database_url_is_one_line(start_storage: StartStorage) -> None:
    url = await start_storage(sample_catalogue())
    bad = "postgresql://someone:hunter2@127.0.0.1:1/nowhere"
    done = await run_loader(*migrate_args(url, bad))
    assert done.code == ExitCode.DATABASE
    assert_one_clean_line(done.err, "hunter2", STORAGE_KEY)


async def test_missing_table_and_unique_index(start_storage: StartStorage, db, db_url: str) -> None:
    url = await start_storage(sample_catalogue())
    await db.execute("ALTER TABLE image_assets DROP CONSTRAINT image_assets_file_path_key")
    await db.execute("INSERT INTO image_assets (file_path) VALUES ('a'), ('a')")
    done = await run_loader(*migrate_args(url, db_url))
    assert done.code == ExitCode.SCHEMA
    assert "1 file_path(s) occur more than once" in done.err
    await db.execute("DELETE FROM image_assets")
    done = await run_loader(*migrate_args(url, db_url))
    assert done.code == ExitCode.SCHEMA and "--create-unique-index" in done.err
    done = await run_loader(*migrate_args(url, db_url, "--create-unique-index", "--match", "none"))
    assert done.code == 0, done.err
    await db.execute("DROP TABLE image_assets")
    done = await run_loader(*migrate_args(url, db_url))
    assert done.code == ExitCode.SCHEMA
    assert_one_clean_line(done.err)
    assert "image_assets not found" in done.err


async def test_report_and_log_never_hold_the_key(
    start_storage: StartStorage, db, db_url: str, tmp_path
) -> None:
    url = await start_storage(sample_catalogue())
    report, log = tmp_path / "r.json", tmp_path / "log.jsonl"
    done = await run_loader(*migrate_args(url, db_url, "--match", "none", "--report",
                                          str(report), "--log-file", str(log)))  # fmt: skip
    assert done.code == 0, done.err
    body = orjson.loads(report.read_bytes())
    assert {"inserted", "updated", "unchanged", "failed"} <= set(body)
    assert body["inserted"] == len(media_names())
    stored = await db.fetchval("SELECT options::text FROM loader.runs")
    assert '"key": "***"' in stored
    for text in (report.read_text(), log.read_text(), done.out, done.err, stored):
        assert STORAGE_KEY not in text
    assert any(
        orjson.loads(line)["event"] == "folder_done" for line in log.read_text().splitlines()
    )


async def test_match_report_review_and_apply(db, db_url: str, tmp_path) -> None:
    await db.execute(
        "INSERT INTO customers (id, name, phone, folder_name) VALUES"
        " (1, '김종철', '010-1234-6654', 'kimjongchull-6654'),"
        " (2, '이남구', '010-9876-8768', NULL),"
        " (3, '박민수', '010-1111-2222', 'parkminsu-2222'),"
        " (4, '박민서', '010-3333-2222', 'parkminseo-2222')"
    )
    folders = tmp_path / "folders.txt"
    folders.write_text("kimjongchull-6654\nleenamgu-8768\nparkminsu-2222x\nnobody-0000\n")
    report = tmp_path / "r.json"
    review = tmp_path / "review.csv"
    done = await run_loader("match", "--folders", str(folders), "--report", str(report),
                            "--review", str(review), "--database-url", db_url)  # fmt: skip
    assert done.code == 0, done.err
    body = orjson.loads(report.read_bytes())
    by_folder = {f["folder"]: f for f in body["folders"]}
    for entry in by_folder.values():
        assert {"folder", "status", "customer_id", "confidence", "candidates"} <= set(entry)
    assert by_folder["kimjongchull-6654"]["status"] == "exact"
    assert by_folder["kimjongchull-6654"]["customer_id"] == 1
    assert by_folder["nobody-0000"]["customer_id"] is None
    assert (tmp_path / "r.csv").exists()

    assert by_folder["leenamgu-8768"]["status"] == "auto"  # null folder_name, name + phone
    assert by_folder["parkminsu-2222x"]["status"] == "review"  # two customers share 2222
    # a person decides the unmatched folder, and writes it back as folder_name
    lines = review.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split(",")
    edited = [lines[0]]
    for line in lines[1:]:
        if line.startswith("nobody-0000,"):
            cells = line.split(",")
            cells[header.index("decision")] = "4"
            line = ",".join(cells)
        edited.append(line)
    review.write_text("\n".join(edited) + "\n", encoding="utf-8")
    applied = await run_loader("match", "apply", str(review), "--write-folder-name",
                               "--folders", str(folders), "--database-url", db_url)  # fmt: skip
    assert applied.code == 0, applied.err
    assert await db.fetchval("SELECT folder_name FROM customers WHERE id = 4") == "nobody-0000"
    rerun = await run_loader("match", "--folders", str(folders), "--report", str(report),
                             "--review", str(review), "--database-url", db_url)  # fmt: skip
    assert rerun.code == 0, rerun.err
    by_folder = {f["folder"]: f for f in orjson.loads(report.read_bytes())["folders"]}
    assert (by_folder["nobody-0000"]["status"], by_folder["nobody-0000"]["customer_id"]) == (
        "decided", 4,
    )  # fmt: skip
    reverted = await run_loader("match", "revert", "--database-url", db_url)
    assert reverted.code == 0, reverted.err
    assert await db.fetchval("SELECT folder_name FROM customers WHERE id = 4") == (
        "parkminseo-2222"
    )

    review.write_text("folder,decision\nleenamgu-8768,abc\n", encoding="utf-8")
    bad = await run_loader("match", "apply", str(review), "--folders", str(folders),
                           "--database-url", db_url)  # fmt: skip
    assert bad.code == ExitCode.BAD_INPUT
    assert_one_clean_line(bad.err)


async def test_missing_customers_table_is_a_schema_error(
    start_storage: StartStorage, db, db_url: str
) -> None:
    url = await start_storage(sample_catalogue())
    await db.execute("DROP TABLE customers")
    done = await run_loader(*migrate_args(url, db_url))
    assert done.code == ExitCode.SCHEMA
    assert_one_clean_line(done.err)
    assert "--match none" in done.err
    assert (await run_loader(*migrate_args(url, db_url, "--match", "none"))).code == 0
