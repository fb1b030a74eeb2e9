"""User text in spreadsheets and CSV is always text, never a formula (公式注入 / CSV injection).

A resident named ``=HYPERLINK(...)`` must reach a ledger as those characters, not as a live
formula. Every xlsx row the project writes goes through :func:`append_row` (or
:func:`text_cell` for one cell), every CSV value through :func:`csv_safe`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # openpyxl is imported where a workbook is made, not with the URLconf
    from openpyxl.cell.cell import Cell
    from openpyxl.worksheet.worksheet import Worksheet

# Characters that make a spreadsheet program read a cell as a formula or a command (OWASP).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def is_formula_like(value: Any) -> bool:
    """Whether a string would be read as a formula by Excel, WPS or LibreOffice."""
    return isinstance(value, str) and value.startswith(FORMULA_START)


def text_cell(cell: Cell) -> Cell:
    """Force a cell holding a string to be stored as text (openpyxl otherwise stores a string
    that starts with ``=`` as a formula)."""
    if isinstance(cell.value, str):
        cell.data_type = "s"
    return cell


def append_row(ws: Worksheet, values: Iterable[Any]) -> None:
    """``ws.append(values)`` with every string cell stored as text. The cells are made here
    and handed to ``append``: looking the row up afterwards (``ws[ws.max_row]``) scanned every
    cell of the sheet for each row (10 s for a community's 台账 of 4,000 rows)."""
    from openpyxl.cell.cell import Cell

    ws.append([text_cell(v if isinstance(v, Cell) else Cell(ws, value=v)) for v in values])


def csv_safe(value: Any) -> Any:
    """A CSV value that a spreadsheet will not execute: formula-like strings get a leading
    apostrophe (the convention Excel and LibreOffice show as plain text)."""
    if is_formula_like(value):
        return "'" + value
    return value
