"""Report stage: summaries on the terminal (rich tables) and machine-readable reports."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from loader.errors import BadInputError
from loader.listing import loose_media_warning
from loader.redact import redact_value

if TYPE_CHECKING:
    from loader.match import FolderMatch
    from loader.migrate import MigrateResult
    from loader.scan import ScanReport
    from loader.storage_client import ClientStats
    from loader.verify import VerifyResult

KINDS = ("image", "video", "other", "placeholder")


# Output that is not a terminal (a pipe, a file, a CI log) is never wrapped: each table row
# and each message stays one line, so a long path is never cut in two (grep, copy-paste).
UNWRAPPED = 100_000
SCAN_TOP = 15  # folders the scan summary shows unless --all


def console(to_stderr: bool = False) -> Console:
    out = Console(stderr=to_stderr, highlight=False)
    if not out.is_terminal:
        out.width = UNWRAPPED
    return out


def elapsed(seconds: float) -> str:
    return f"elapsed {seconds:.2f} s"


def _kind_row(label: str, counts: Counter[str]) -> list[str]:
    return [label, *(f"{counts.get(k, 0):,}" for k in KINDS), f"{sum(counts.values()):,}"]


def print_scan_summary(
    report: ScanReport, *, to_stderr: bool = False, every_folder: bool = False
) -> None:
    """Per-folder counts (largest first: the first SCAN_TOP, or all) and totals."""
    out = console(to_stderr)
    table = Table(title=f"scan: {len(report.folders)} folders (list api {report.api})")
    table.add_column("folder")
    for name in (*KINDS, "total"):
        table.add_column(name, justify="right")
    ranked = sorted(report.folders.items(), key=lambda kv: -sum(kv[1].values()))
    shown = ranked if every_folder else ranked[:SCAN_TOP]
    for folder, counts in shown:
        table.add_row(*_kind_row(escape(folder), counts))
    if len(ranked) > len(shown):
        more = f"… {len(ranked) - len(shown)} more folders (--all shows every folder)"
        table.add_row(more, *[""] * (len(KINDS) + 1))
    if report.loose:
        table.add_row(*_kind_row("(loose files under prefix)", report.loose))
    table.add_section()
    table.add_row(*_kind_row("TOTAL", report.totals()))
    out.print(table)
    out.print(
        f"{report.calls:,} Storage calls, {report.retries:,} retries, {elapsed(report.elapsed_s)}"
    )
    for failure in report.failures:
        out.print(f"[red]failed folder[/red] {failure.folder}: {failure.reason}")
    if (loose := loose_media_warning(report.loose_media)) is not None:
        out.print(f"[yellow]{escape(loose)}[/yellow]")


def write_json(path: Path, payload: Any) -> None:
    """Write a report atomically (a killed process never leaves half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    payload = redact_value(payload)  # failure reasons may quote a server's words
    try:
        tmp.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        tmp.replace(path)
    except OSError as exc:
        raise BadInputError(f"cannot write report {path}: {exc.strerror or exc}") from exc


def print_migrate_summary(result: MigrateResult) -> None:
    """What the run did, in one table, then failed folders and rows (first few)."""
    out = console()
    t = result.totals
    title = (
        f"migrate run {result.run_id}: {result.status}"
        if result.run_id is not None
        else "migrate --dry-run: nothing written"
    )
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    verb = "would be " if result.run_id is None else ""
    for label, key in (
        (f"{verb}inserted", "inserted"),
        (f"{verb}updated", "updated"),
        ("unchanged", "unchanged"),
        ("failed rows", "failed"),
        ("folders", "folders"),
        ("folders failed", "folders_failed"),
    ):
        table.add_row(label, f"{t.get(key, 0):,}")
    if result.match_summary:
        table.add_section()
        for status, count in sorted(result.match_summary.items()):
            table.add_row(f"folders matched: {status}", f"{count:,}")
    out.print(table)
    if result.requests is not None:
        out.print(storage_requests_line(result.requests))
    out.print(elapsed(result.elapsed_s))
    failed = [f for f in result.folders if f.get("state") == "failed"]
    for folder in failed[:10]:
        out.print(f"[red]failed folder[/red] {folder['folder']}: {folder.get('error')}")
    for row in result.failed_rows[:10]:
        out.print(f"[red]failed row[/red] {row['file_path']}: {row['reason']}")
    if result.status == "running" and result.run_id is not None:
        out.print(f"run {result.run_id} is not finished: resume with "
                  f"loader migrate --resume {result.run_id}")  # fmt: skip
    if result.status == "incomplete" and result.run_id is not None:
        out.print(f"retry what failed with: loader migrate --resume {result.run_id}")


def storage_requests_line(r: ClientStats) -> str:
    """Storage requests, with what the tail-latency guards did (storage_client)."""
    return (
        f"{r.calls:,} Storage calls, {r.retries:,} retries ({r.early_retries:,} early:"
        f" stalls cut), {r.hedges:,} hedges ({r.hedges_won:,} won)"
    )


def print_verify_result(result: VerifyResult) -> None:
    """One line per finding, errors then warnings, with a few example paths for each."""
    from loader.verify import ERRORS, FIXES, LABELS, WARNINGS

    out = console()
    out.print(
        f"verify: {result.media_files:,} media files in Storage"
        f" (folder -> customer from the {result.mapping_from})"
    )
    for grade, names, colour in (("errors", ERRORS, "red"), ("warnings", WARNINGS, "yellow")):
        out.print(f" {grade}")
        for name in names:
            count = result.counts[name]
            shown = "green" if count == 0 else colour
            out.print(f"  [{shown}]{count:>9,}[/{shown}]  {LABELS[name]}  ({name})")
            for path in result.examples.get(name, [])[:5]:
                out.print(f"             {escape(path)}")
            if count and name in FIXES:
                out.print(f"             fix: {FIXES[name]}")
    for failure in result.failed_folders:
        out.print(f"[red]folder not listed[/red] {failure.folder}: {failure.reason}")
    if (loose := loose_media_warning(result.loose_files)) is not None:
        out.print(f"[yellow]{escape(loose)}[/yellow]")
    if result.urls_checked:
        bad = len(result.url_failures)
        colour = "green" if bad == 0 else "red"
        out.print(f"  [{colour}]{bad:>9,}[/{colour}]  of {result.urls_checked:,} cdn_urls checked"
                  " do not answer 200")  # fmt: skip
        for failure in result.url_failures[:20]:
            out.print(f"             {failure.answer}: {failure.url}")
    if not result.ok:
        out.print(f"[red]problems found[/red]: {result.errors:,} errors")
    elif result.warnings:
        out.print(f"[green]OK[/green] with {result.warnings:,} warnings (--strict fails on them)")
    else:
        out.print("[green]OK[/green]")


def print_backups(rows: list[dict[str, Any]]) -> None:
    """One line per backup, newest first."""
    table = Table(title="loader backups")
    for name in ("backup", "taken", "run", "reason", "rows", "customers", "size"):
        table.add_column(name, justify="left" if name in ("taken", "reason") else "right")
    for r in rows:
        table.add_row(
            str(r["backup_id"]), f"{r['taken_at']:%Y-%m-%d %H:%M:%S}",
            str(r["run_id"]) if r["run_id"] is not None else "-", r["reason"],
            f"{r['rows']:,}", f"{r['customers'] or 0:,}", f"{r['bytes'] / 1e6:,.1f} MB",
        )  # fmt: skip
    console().print(table)


def print_match_summary(matches: list[FolderMatch], *, show: int = 20) -> None:
    """Counts per status, then the folders a person must look at, with the best candidate."""
    from loader.match import NEEDS_PERSON, summarize

    out = console()
    counts = summarize(matches)
    table = Table(title=f"match: {counts['total']} folders, {counts['linked']} linked")
    table.add_column("status")
    table.add_column("folders", justify="right")
    for status in ("decided", "exact", "normalized", "auto", "review", "conflict", "unmatched"):
        table.add_row(status, str(counts.get(status, 0)))
    out.print(table)
    needing = [m for m in matches if m.status in NEEDS_PERSON]
    for m in needing[:show]:
        best = m.candidates[0] if m.candidates else None
        hint = "no candidate"
        if best is not None:
            hint = f"best: {best.customer_id} {best.name} (confidence {best.confidence:.2f},"
            hint += f" phone {best.phone_evidence})"
        out.print(f"  {m.status:<9} {m.folder}  {hint}  {m.reason or ''}")
    if len(needing) > show:
        out.print(f"  ... {len(needing) - show} more in the review CSV")


def print_runs(rows: list[dict[str, Any]]) -> None:
    """One line per run, newest first."""
    table = Table(title="loader runs")
    for name in ("run", "status", "started", "folders", "inserted", "updated", "failed"):
        table.add_column(name, justify="right" if name not in ("status", "started") else "left")
    for r in rows:
        counts = r["counts"] or {}
        table.add_row(
            str(r["run_id"]), r["status"], f"{r['started_at']:%Y-%m-%d %H:%M}",
            f"{r['folders_done']}/{r['folders']}", *(f"{counts.get(k, 0):,}" if counts else "-"
                                                    for k in ("inserted", "updated", "failed")),
        )  # fmt: skip
    console().print(table)
