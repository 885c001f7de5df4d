"""The viewer's fields of an item, from a row of the app's table (Qt-free)."""

import numpy as np
import pandas as pd

from oddscope.app.item_details import viewer_fields
from oddscope.app.table_state import with_view_dtypes


def test_the_status_shows_a_reason_only_for_an_item_that_has_one():
    table = with_view_dtypes(pd.DataFrame({
        "rank": [1, 0, 2], "anomaly_score": [0.9, np.nan, 0.5], "status": ["ok", "skipped", "ok"],
        "reason": [None, "cannot decode", ""], "path": ["a.png", "b.png", "c.png"]}))
    assert isinstance(table["reason"].dtype, pd.CategoricalDtype)  # a missing reason reads back as NaN
    status = [dict(viewer_fields(table.loc[i], "knn"))["Status"] for i in table.index]
    assert status == ["ok", "skipped (cannot decode)", "ok"]
