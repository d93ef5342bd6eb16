"""Empty cells trailing a sheet's rows, taken out before python-calamine sizes the sheet.

Real comment exports carry thousands of empty columns after the last header (SPEC §3.1). When
those cells hold an empty string rather than nothing (`<c t="inlineStr"><is><t></t></is></c>`,
or a shared string that is empty), calamine counts them into the sheet's width and allocates
every row that wide: a 1.4 MB export with 3,000 of them in its header row and 55,000 rows took
5.2 GB and 16 s to open. Such a sheet is first copied with the empty cells at the end of each
row left out. Only trailing cells go: cells without an `r` attribute are placed by their order,
so removing one in the middle would shift the cells after it.

The check reads the start of each worksheet only, so a normal export costs a few milliseconds.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from tickets.readers.xlsx_xml import TEMP_PREFIX

# A row ending in at least this many empty cells marks the sheet as padded.
WIDE_RUN = 64
# How much of each worksheet's XML the check reads, and the rewrite's chunk size.
PREFIX_BYTES = 4 << 20
# Shared strings scanned for empty ones: a header's strings are among the first in the table.
SHARED_STRINGS_SCANNED = 10_000

_SHEET_MEMBER = re.compile(r"xl/worksheets/[^/]+\.xml")
_SI = re.compile(rb"<si>(.*?)</si>|<si/>", re.S)
_TEXT = re.compile(rb"<t\b[^>]*>([^<]+)</t>")


def _empty_shared_strings(zf: zipfile.ZipFile) -> list[int]:
    """Indices of the empty entries among the first shared strings."""
    if "xl/sharedStrings.xml" not in zf.namelist():
        return []
    empty, index, tail = [], 0, b""
    with zf.open("xl/sharedStrings.xml") as fh:
        while index < SHARED_STRINGS_SCANNED and (chunk := fh.read(1 << 20)):
            data = tail + chunk
            cut = data.rfind(b"</si>") + 5 if b"</si>" in data else 0
            for match in _SI.finditer(data, 0, cut):
                if not _TEXT.search(match.group(1) or b""):
                    empty.append(index)
                index += 1
            tail = data[cut:]
    return empty


def _empty_cell(empty_shared: list[int]) -> bytes:
    """Regex of one cell that holds nothing: no value, an empty value or an empty string."""
    forms = [
        rb"<c\b[^>]*?/>",
        rb"<c\b[^>]*?>(?:<v\s*/>|<v></v>|<is\s*/>|<is><t\b[^>]*?/></is>|<is><t\b[^>]*?></t></is>)</c>",
    ]
    if empty_shared:
        numbers = b"|".join(str(i).encode() for i in empty_shared)
        forms.append(rb'<c\b[^>]*?\bt="s"[^>]*?><v>(?:' + numbers + rb")</v></c>")
    return rb"(?:" + rb"|".join(forms) + rb")"


def _empty_runs(cell: bytes) -> re.Pattern[bytes]:
    """Each whole run of empty cells, with the `</row>` that follows it if it ends the row.

    A match takes the run to its end and the optional group never fails, so no run is searched
    again from each of its cells: "empty cells then `</row>`" as a pattern made a run that ends
    in a value (a sparse row, a note in a far column) cost quadratic time, 17 s for a few rows
    of 4,000 empty cells.
    """
    return re.compile(rb"(?:" + cell + rb")+(</row>)?")


def is_padded(head: bytes, runs: re.Pattern[bytes]) -> bool:
    """Whether a sheet whose XML starts with `head` (PREFIX_BYTES of it) ends rows in a run of
    WIDE_RUN or more empty cells."""
    return any(m.group(1) and m.group(0).count(b"<c") >= WIDE_RUN for m in runs.finditer(head))


def _padded_sheets(zf: zipfile.ZipFile, cell: bytes) -> list[str]:
    runs = _empty_runs(cell)
    padded = []
    for name in zf.namelist():
        if _SHEET_MEMBER.fullmatch(name):
            with zf.open(name) as fh:
                if is_padded(fh.read(PREFIX_BYTES), runs):
                    padded.append(name)
    return padded


def _row_end_or_run(match: re.Match[bytes]) -> bytes:
    return match.group(1) or match.group(0)  # a trailing run goes, one inside a row stays


def _copy_trimmed(src, dst, runs: re.Pattern[bytes]) -> None:
    tail = b""
    while chunk := src.read(PREFIX_BYTES):
        data = tail + chunk
        cut = data.rfind(b"</row>") + 6 if b"</row>" in data else 0
        dst.write(runs.sub(_row_end_or_run, data[:cut]))
        tail = data[cut:]
    dst.write(tail)


def without_trailing_empty_cells(path: Path) -> Path | None:
    """A temporary copy of the workbook whose padded sheets lost their trailing empty cells,
    or None when no sheet is padded (the file is read as it is). The caller deletes the copy."""
    with zipfile.ZipFile(path) as zf:
        cell = _empty_cell(_empty_shared_strings(zf))
        padded = set(_padded_sheets(zf, cell))
        if not padded:
            return None
        runs = _empty_runs(cell)
        fd, name = tempfile.mkstemp(suffix=".xlsx", prefix=f"{TEMP_PREFIX}trimmed-")
        try:
            with (
                open(fd, "wb") as raw,
                zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as out,
            ):
                for info in zf.infolist():
                    with (
                        zf.open(info) as src,
                        out.open(info.filename, "w", force_zip64=True) as dst,
                    ):
                        if info.filename in padded:
                            _copy_trimmed(src, dst, runs)
                        else:
                            shutil.copyfileobj(src, dst, 1 << 20)
        except BaseException:  # a full disk, a corrupt member, Ctrl-C: no half copy left behind
            Path(name).unlink(missing_ok=True)
            raise
    return Path(name)
