"""The few facts the XLSX readers take from the workbook's XML themselves, by regex.

calamine does the parsing; these scans find what it does not give: which archive member is
which sheet (to slice it), and error cells (which calamine reports as empty).
"""

from __future__ import annotations

import html
import re
import tempfile
import time
import zipfile
from pathlib import Path

CHUNK = 4 << 20

#: Temporary workbooks the readers write (slices, trimmed copies) start so. Each lives for
#: seconds; one older than ORPHAN_AFTER_S was left by a process killed while reading (a hard
#: time limit, the OOM killer) and is removed by the next read.
TEMP_PREFIX = "servicedesk-xlsx-"
ORPHAN_AFTER_S = 3600


def sweep_orphans() -> None:
    """Remove the readers' temporary workbooks that outlived their process."""
    cutoff = time.time() - ORPHAN_AFTER_S
    try:
        found = list(Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*.xlsx"))
    except OSError:  # no usable temp directory: the read itself will say so if it needs one
        return
    for path in found:
        try:
            # lstat: a link planted under this name is judged (and removed) as the link, never
            # followed to wherever it points.
            if path.lstat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # gone meanwhile, or not ours to remove
            pass


_TAG = {name: re.compile(rb"<" + name + rb"\b[^>]*>") for name in (b"sheet", b"Relationship")}
_ATTR = re.compile(rb'([\w:]+)="([^"]*)"')
_CELL_REF = re.compile(rb"([A-Z]+)([0-9]+)")
_VALUE = re.compile(rb"<v>([^<]*)</v>")


def _column_index(letters: bytes) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + (ch - 64)
    return index - 1


def _tags(xml: bytes, name: bytes) -> list[dict[bytes, bytes]]:
    return [dict(_ATTR.findall(m.group(0))) for m in _TAG[name].finditer(xml)]


def collect_errors(data: bytes, end: int, first_column: int, found: dict) -> None:
    """Find error cells with C-speed `bytes.find`, then parse only those few cells (their
    attributes in any order)."""
    at = data.find(b't="e"', 0, end)
    while at != -1:
        start = data.rfind(b"<c ", 0, at)
        stop = data.find(b"</c>", at, end)
        if start == -1 or stop == -1:
            break
        tag_end = data.find(b">", start, stop)
        attrs = dict(_ATTR.findall(data[start:tag_end]))
        ref = _CELL_REF.fullmatch(attrs.get(b"r", b""))
        value = _VALUE.search(data, tag_end, stop)
        if attrs.get(b"t") == b"e" and ref and value:
            col, row = ref.groups()
            found.setdefault(int(row), []).append(
                (_column_index(col) - first_column, value.group(1).decode(errors="replace"))
            )
        at = data.find(b't="e"', stop, end)


WORKBOOK_RELS = "xl/_rels/workbook.xml.rels"


def _relationships(zf: zipfile.ZipFile) -> list[dict[bytes, bytes]]:
    names = zf.namelist()
    return _tags(zf.read(WORKBOOK_RELS), b"Relationship") if WORKBOOK_RELS in names else []


def _member(target: bytes) -> str:
    """An archive member from a relationship target (relative to xl/, or absolute)."""
    name = target.decode().lstrip("/")
    return "" if not name else name if name.startswith("xl/") else f"xl/{name}"


def sheet_members(zf: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, archive member) of every sheet, in workbook order ('' when unresolved)."""
    rels = {a.get(b"Id"): a.get(b"Target", b"") for a in _relationships(zf)}
    return [
        (html.unescape(a.get(b"name", b"").decode()), _member(rels.get(a.get(b"r:id"), b"")))
        for a in _tags(zf.read("xl/workbook.xml"), b"sheet")
    ]


#: What a sheet's values depend on besides the sheet: styles (which numbers are dates), the
#: shared strings, and the package parts that lead to them. calamine reads them at these
#: names (tested: a shared string table elsewhere is not found, whatever the rels say).
VALUE_PARTS = (
    "[Content_Types].xml",
    "_rels/.rels",
    "xl/workbook.xml",
    WORKBOOK_RELS,
    "xl/styles.xml",
    "xl/sharedStrings.xml",
)


def value_parts(zf: zipfile.ZipFile) -> list[str]:
    """The archive's members among VALUE_PARTS, compared as calamine finds them: without case,
    and with a backslash for a slash (Windows tools may write `XL\\SharedStrings.xml`; calamine
    reads it, so a slice without it would lose its dates or strings)."""
    wanted = {name.lower() for name in VALUE_PARTS}
    return [name for name in zf.namelist() if name.replace("\\", "/").lower() in wanted]
