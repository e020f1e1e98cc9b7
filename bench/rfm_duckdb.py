"""Baseline: the same per-customer RFM as rfm_pandas.py, as one SQL statement in DuckDB.

    python rfm_duckdb.py ORDERS.csv|ORDERS.parquet OUT.csv

Same input, output columns and rules as rfm_pandas.py. The CSV is read with explicit column
types and timestamp format (no sniffing); amounts are DECIMAL(18,2), so sums are exact. Scores:
1 + (5 * (rank() - 1)) // count(*) over (), with each window ordered so that better values come
later: rank() gives tied values the same (lowest) rank, so rank() - 1 counts the customers with
a strictly worse value. DuckDB runs with its default thread count (all cores).

Prints one JSON line: {"tool": "duckdb", "seconds": wall time of the whole job including the
duckdb import, "customers": N}.
"""
import time

START = time.perf_counter()

import json  # noqa: E402
import sys  # noqa: E402

import duckdb  # noqa: E402


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


QUERY = """
COPY (
  WITH orders AS (
    SELECT customer_id, order_id, CAST(order_date AS DATE) AS day,
           CAST(amount AS DECIMAL(18,2)) AS amount
    FROM {source}
  ),
  c AS (
    SELECT customer_id,
           min(day) AS first_order,
           max(day) AS last_order,
           count(DISTINCT order_id) AS n_orders,
           count(DISTINCT day) AS n_purchase_days,
           sum(amount) AS total_spend
    FROM orders
    GROUP BY customer_id
  ),
  d AS (
    -- as-of: the latest order date in the file
    SELECT *, max(last_order) OVER () - last_order AS days_since_last_order FROM c
  )
  SELECT customer_id, first_order, last_order, n_orders, n_purchase_days,
         CAST(total_spend AS DECIMAL(18,2)) AS total_spend,
         CAST(round(total_spend / n_orders, 2) AS DECIMAL(18,2)) AS avg_order_value,
         days_since_last_order,
         CAST(1 + 5 * (rank() OVER (ORDER BY days_since_last_order DESC) - 1) // count(*) OVER ()
              AS TINYINT) AS r_score,
         CAST(1 + 5 * (rank() OVER (ORDER BY n_orders ASC) - 1) // count(*) OVER ()
              AS TINYINT) AS f_score,
         CAST(1 + 5 * (rank() OVER (ORDER BY total_spend ASC) - 1) // count(*) OVER ()
              AS TINYINT) AS m_score
  FROM d
) TO {out} (FORMAT csv, HEADER true, DELIMITER ',')
"""


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: rfm_duckdb.py ORDERS.csv|ORDERS.parquet OUT.csv")
    path, out = sys.argv[1], sys.argv[2]
    con = duckdb.connect()  # in-memory, default settings and threads
    if path.endswith(".parquet"):
        source = f"read_parquet({sql_string(path)})"
    else:
        source = (
            f"read_csv({sql_string(path)}, header = true, delim = ',', quote = '\"', auto_detect = false, "
            "columns = {'customer_id': 'VARCHAR', 'order_id': 'VARCHAR', "
            "'order_date': 'TIMESTAMP', 'amount': 'DECIMAL(18,2)'}, "
            "timestampformat = '%Y-%m-%d %H:%M:%S')"
        )
    customers = con.execute(QUERY.format(source=source, out=sql_string(out))).fetchone()[0]
    seconds = time.perf_counter() - START
    print(json.dumps({"tool": "duckdb", "seconds": round(seconds, 3), "customers": customers}))


if __name__ == "__main__":
    main()
