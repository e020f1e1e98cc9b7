"""Baseline: per-customer RFM with pandas, for timing against Lifecycle on the same CSV.

    python rfm_pandas.py ORDERS.csv OUT.csv

ORDERS.csv has the header `customer_id,order_id,order_date,amount` (order_date
`YYYY-MM-DD HH:MM:SS`, amount with 2 decimals). OUT.csv gets one row per customer:
customer_id,first_order,last_order,n_orders,n_purchase_days,total_spend,avg_order_value,
days_since_last_order,r_score,f_score,m_score (the leading columns of Lifecycle's customers.csv).

- n_orders: distinct order_id; n_purchase_days: distinct calendar dates.
- days_since_last_order: whole days from the last order's date to the as-of date, which is the
  latest order date in the file.
- Scores 1-5 by quintiles where tied values share a score:
  1 + floor(5 * (customers with a strictly worse value) / customers), i.e. rank(method="min").
  R: fewer days since the last order is better; F: more orders; M: more spend.
- Amounts are summed as integer cents so equal totals tie exactly (no float drift in M).

Prints one JSON line: {"tool": "pandas", "seconds": wall time of the whole job including the
pandas import, "customers": N}.
"""
import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


def read_orders(path: str) -> pd.DataFrame:
    # The pyarrow engine reads on all cores and hands date_format to pyarrow's own strptime
    # parser (timestamp_parsers), so order_date is parsed with the explicit format while
    # reading; a value that does not match is an error. Reading 10^7 rows (fresh process): ~1.1 s,
    # against ~5 s for text + pd.to_datetime(format=...) and ~10 s with the default C engine.
    df = pd.read_csv(
        path,
        engine="pyarrow",
        dtype={"customer_id": "str", "order_id": "str", "amount": "float64"},
        parse_dates=["order_date"],
        date_format=DATE_FORMAT,
    )
    if not pd.api.types.is_datetime64_dtype(df["order_date"]):  # pandas keeps text it can't parse
        raise ValueError(f"{path}: some order_date values do not match {DATE_FORMAT}")
    return df


def score(values: pd.Series, higher_is_better: bool) -> pd.Series:
    """1 + floor(5 * strictly_worse / n); rank(method="min") - 1 counts the strictly worse."""
    worse = values.rank(method="min", ascending=higher_is_better).astype("int64") - 1
    return (1 + 5 * worse // len(values)).astype("int8")


def rfm(df: pd.DataFrame) -> pd.DataFrame:
    df["day"] = df["order_date"].dt.normalize()
    df["cents"] = np.rint(df["amount"].to_numpy() * 100).astype("int64")
    c = df.groupby("customer_id", sort=False).agg(
        first_order=("day", "min"),
        last_order=("day", "max"),
        n_orders=("order_id", "nunique"),
        n_purchase_days=("day", "nunique"),
        cents=("cents", "sum"),
    )
    as_of = c["last_order"].max()  # the latest order date in the file
    c["total_spend"] = c["cents"] / 100
    c["avg_order_value"] = c["cents"] / (100 * c["n_orders"])
    c["days_since_last_order"] = (as_of - c["last_order"]).dt.days
    c["r_score"] = score(c["days_since_last_order"], higher_is_better=False)
    c["f_score"] = score(c["n_orders"], higher_is_better=True)
    c["m_score"] = score(c["cents"], higher_is_better=True)
    return c[
        ["first_order", "last_order", "n_orders", "n_purchase_days", "total_spend",
         "avg_order_value", "days_since_last_order", "r_score", "f_score", "m_score"]
    ]


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: rfm_pandas.py ORDERS.csv OUT.csv")
    path, out = sys.argv[1], sys.argv[2]
    c = rfm(read_orders(path))
    c.to_csv(out, float_format="%.2f", date_format="%Y-%m-%d")
    seconds = time.perf_counter() - START
    print(json.dumps({"tool": "pandas", "seconds": round(seconds, 3), "customers": len(c)}))


if __name__ == "__main__":
    main()
