"""The few facts the XLSX readers take from the workbook's XML themselves, by regex.

calamine does the parsing; these scans find what it does not give: which archive member is
which sheet (to slice it), and error cells (which calamine reports as empty).
"""

from __future__ import annotations

import html
import re
import zipfile

CHUNK = 4 << 20

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


def sheet_members(zf: zipfile.ZipFile) -> list[tuple[str, str]]:
    """(sheet name, archive member) of every sheet, in workbook order ('' when unresolved)."""
    rels_name = "xl/_rels/workbook.xml.rels"
    rels = (
        {a.get(b"Id"): a.get(b"Target", b"") for a in _tags(zf.read(rels_name), b"Relationship")}
        if rels_name in zf.namelist()
        else {}
    )
    out = []
    for a in _tags(zf.read("xl/workbook.xml"), b"sheet"):
        target = rels.get(a.get(b"r:id"), b"").decode().lstrip("/")
        member = "" if not target else target if target.startswith("xl/") else f"xl/{target}"
        out.append((html.unescape(a.get(b"name", b"").decode()), member))
    return out
