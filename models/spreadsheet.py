"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Names, addresses and notes come from customers; a name such as
`=HYPERLINK("http://evil.example", "click")` in an export opened in a
spreadsheet would be a formula. A cell that a spreadsheet would read as one
(starting with `=`, `@`, a tab or a carriage return, or with `+` or `-`
where it is not a plain number) gets a leading `'`, which spreadsheets show
as text; numbers, including negative amounts and `+49...` phone numbers,
are left as they are.
"""

import re

_FORMULA_START = ("=", "@", "\t", "\r")
_SIGNED_NUMBER = re.compile(r"[+-]\d+(\.\d+)?")


def text_cell(value: str) -> str:
    """`value` as a CSV cell no spreadsheet takes for a formula."""
    if value.startswith(_FORMULA_START) or (
        value.startswith(("+", "-")) and not _SIGNED_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value
