"""Baseline: per-customer RFM with quintile scores in pandas, as an analyst would write it.

Input: the CSV of `lifecycle generate` (customer_id,order_id,order_date,amount).
Scores follow Lifecycle's documented rule: 1 + floor(5 * (customers strictly worse) / n),
i.e. rank(method="min"). Writes the per-customer table to OUT and prints one JSON line.
"""
import json
import sys
import time

import numpy as np
import pandas as pd


def main(path: str, out: str) -> None:
    start = time.perf_counter()
    df = pd.read_csv(
        path,
        dtype={"customer_id": "string", "order_id": "string", "amount": "float64"},
        parse_dates=["order_date"],
        date_format="%Y-%m-%d %H:%M:%S",
    )
    df["day"] = df["order_date"].dt.normalize()
    as_of = df["day"].max()
    g = df.groupby("customer_id", sort=False)
    c = pd.DataFrame(
        {
            "first_order": g["day"].min(),
            "last_order": g["day"].max(),
            "n_orders": g["order_id"].nunique(),
            "n_purchase_days": g["day"].nunique(),
            "total_spend": g["amount"].sum(),
        }
    )
    c["avg_order_value"] = c["total_spend"] / c["n_orders"]
    c["days_since_last_order"] = (as_of - c["last_order"]).dt.days
    n = len(c)

    def score(values: pd.Series, higher_is_better: bool) -> pd.Series:
        ranks = values.rank(method="min", ascending=higher_is_better)
        return (1 + np.floor(5 * (ranks - 1) / n)).astype("int8")

    c["r_score"] = score(c["days_since_last_order"], higher_is_better=False)
    c["f_score"] = score(c["n_orders"], higher_is_better=True)
    c["m_score"] = score(c["total_spend"].round(2), higher_is_better=True)
    c.to_csv(out, float_format="%.2f")
    print(json.dumps({"tool": "pandas " + pd.__version__, "seconds": round(time.perf_counter() - start, 3), "customers": n}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
