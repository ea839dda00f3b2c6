"""Finding a page's table: AppTest lists dataframes by position, not by key."""

import pandas as pd


def table(at, *columns: str, last: bool = False, without: str | None = None) -> pd.DataFrame:
    """The page's first (or ``last``) table with these columns and without the column ``without``."""
    found = [
        d.value
        for d in at.dataframe
        if set(columns) <= set(d.value.columns) and (without is None or without not in d.value.columns)
    ]
    if not found:
        raise AssertionError(f"No table with {columns} on the page.")
    return found[-1] if last else found[0]
