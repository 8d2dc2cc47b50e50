"""The matcher's files: the report (JSON and CSV), the review CSV a person fills in and
reads back, and folder lists (`--folders`). The matching itself is `loader.match`."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import orjson

from loader.errors import BadInputError
from loader.match import NEEDS_PERSON, Candidate, FolderMatch, summarize

# A spreadsheet runs a cell that starts like a formula; a leading quote keeps it text. Text
# that starts with a quote gets one more, so reading back is exact.
_QUOTED_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_QUOTED_START) else text


def _uncell(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(_QUOTED_START) else text


def _compact(candidates: Sequence[Candidate]) -> str:
    return "; ".join(
        f"{c.customer_id} {c.name or ''} {c.confidence:.2f} "
        f"(name {c.name_score:.2f} as {c.spelling}, phone {c.phone_evidence})"
        for c in candidates
    )


def write_report(matches: Sequence[FolderMatch], json_path: Path) -> tuple[Path, Path]:
    """Write `{"summary", "folders"}` as JSON and one row per folder as CSV (same stem)."""
    json_path = Path(json_path)
    csv_path = json_path.with_suffix(".csv")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"summary": summarize(matches), "folders": [asdict(m) for m in matches]}
    json_path.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
    # utf-8-sig: a spreadsheet opened on Windows shows Hangul only with the BOM.
    with csv_path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(
            [
                "folder",
                "status",
                "customer_id",
                "customer_name",
                "confidence",
                "reason",
                "candidates",
            ]
        )
        for m in matches:
            writer.writerow(
                [
                    _cell(m.folder),
                    m.status,
                    "" if m.customer_id is None else m.customer_id,
                    _cell(m.customer_name or ""),
                    f"{m.confidence:.4f}",
                    m.reason or "",
                    _cell(_compact(m.candidates)),
                ]
            )
    return json_path, csv_path


REVIEW_COLUMNS = (
    "folder",
    "status",
    "suggested_customer_id",
    "confidence",
    "reason",
    "candidates",
    "decision",
)


def write_review_csv(matches: Sequence[FolderMatch], path: Path) -> int:
    """Write the folders that need a person (review, unmatched, conflict); return how many.

    The person fills `decision` with a customer id, or `none` to keep the folder unmatched,
    and leaves it empty to decide later.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(REVIEW_COLUMNS)
        for m in matches:
            if m.status not in NEEDS_PERSON:
                continue
            suggested = (
                m.candidates[0].customer_id if m.candidates and m.status != "unmatched" else ""
            )
            writer.writerow(
                [
                    _cell(m.folder),
                    m.status,
                    suggested,
                    f"{m.confidence:.2f}",
                    m.reason or "",
                    _cell(_compact(m.candidates)),
                    "",
                ]
            )
            rows += 1
    return rows


def read_review_csv(path: Path) -> dict[str, int | None]:
    """Decisions a person filled into a review CSV: folder -> customer id, or None for `none`.

    Rows with an empty decision are left out; a file with no decision at all is bad input (a
    person meant to record something), with a hint. A missing, unknown or repeated column, a
    row with more or fewer cells than the header, an unterminated quote, an empty folder, a
    decision that is neither a positive integer nor `none`, or two different decisions for
    one folder raise BadInputError naming the line. A UTF-8 BOM and CRLF line ends are fine
    (spreadsheets write both).
    """
    path = Path(path)
    decisions: dict[str, int | None] = {}
    line = 1  # where the row being read starts (a quoted cell may span lines)
    try:
        with path.open(encoding="utf-8-sig", newline="") as src:
            # strict: an unterminated quote is an error, not a cell swallowing the file.
            reader = csv.reader(src, strict=True)
            header = next(reader, [])
            unknown = ", ".join(repr(name) for name in header if name not in REVIEW_COLUMNS)
            if unknown:
                raise BadInputError(f"{path}:1: unknown column(s) {unknown} (a review CSV has"
                                    f" {', '.join(REVIEW_COLUMNS)})")  # fmt: skip
            if len(set(header)) != len(header):
                raise BadInputError(f"{path}:1: a column appears twice")
            missing = {"folder", "decision"} - set(header)
            if missing:
                raise BadInputError(f"{path}:1: missing column(s) {', '.join(sorted(missing))}")
            at = {name: i for i, name in enumerate(header)}
            line = reader.line_num + 1
            for cells in reader:
                start, line = line, reader.line_num + 1
                if not any(c.strip() for c in cells):
                    continue  # a blank line
                if len(cells) != len(header):
                    raise BadInputError(f"{path}:{start}: {len(cells)} cell(s) where the header"
                                        f" has {len(header)} (a cut or shifted row?)")  # fmt: skip
                raw = cells[at["decision"]].strip()
                if not raw:
                    continue
                folder = _uncell(cells[at["folder"]])
                if not folder.strip():
                    raise BadInputError(f"{path}:{start}: decision without a folder")
                if raw.casefold() == "none":
                    value: int | None = None
                elif raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63:  # a bigint
                    value = int(raw)
                else:
                    raise BadInputError(
                        f"{path}:{start}: decision {raw!r} is neither a customer id nor 'none'"
                    )
                if folder in decisions and decisions[folder] != value:
                    raise BadInputError(
                        f"{path}:{start}: second, different decision for {folder!r}"
                    )
                decisions[folder] = value
    except csv.Error as exc:
        raise BadInputError(f"{path}:{line}: not valid CSV from this line on ({exc}; a quote"
                            " that is never closed?)") from exc  # fmt: skip
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read review file ({exc})") from exc
    if not decisions:
        raise BadInputError(
            f"{path}: no decision filled in: put a customer id (one of the row's candidates)"
            " or `none` in the `decision` column of the rows you decided, and save the file"
        )
    return decisions


def read_folders_file(path: Path) -> list[str]:
    """Folder names, one per line (blank lines and `#` comments skipped), for `--folders`."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read folder list ({exc})") from exc
    folders = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    if not folders:
        raise BadInputError(f"{path}: no folder names in it")
    return folders
