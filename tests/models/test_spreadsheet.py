"""Cells of exported CSV files: text stays text in a spreadsheet."""

import pytest

from models.spreadsheet import text_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (
            '=HYPERLINK("http://evil.example","x")',
            '\'=HYPERLINK("http://evil.example","x")',
        ),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
    ],
)
def test_what_a_spreadsheet_would_run_is_quoted(value: str, cell: str) -> None:
    assert text_cell(value) == cell


@pytest.mark.parametrize(
    "value", ["Ada Lovelace", "-12.50", "+4930123456", "19.99", "", "a=b", "SO-000001"]
)
def test_names_and_numbers_are_left_alone(value: str) -> None:
    assert text_cell(value) == value
