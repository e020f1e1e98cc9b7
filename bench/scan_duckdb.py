"""The bare scan: DuckDB reading the four order columns and nothing else.

    python scan_duckdb.py ORDERS.csv|ORDERS.parquet

Sums the lengths of the ids, the latest date and the sum of the amounts, so every value of the
needed columns is read (no answer from the Parquet statistics); the floor any tool's pass over the
file stands on.
"""
import sys

import duckdb

path = sys.argv[1]
if path.endswith(".parquet"):
    source = f"read_parquet('{path}')"
else:
    source = (
        f"read_csv('{path}', header = true, auto_detect = false, columns = {{'customer_id': 'VARCHAR', "
        "'order_id': 'VARCHAR', 'order_date': 'TIMESTAMP', 'amount': 'DOUBLE'}, "
        "timestampformat = '%Y-%m-%d %H:%M:%S')"
    )
print(
    duckdb.connect()
    .execute(
        f"SELECT sum(length(customer_id)), sum(length(order_id)), max(order_date), sum(amount) FROM {source}"
    )
    .fetchone()
)
