"""Baseline: the same per-customer RFM as SQL in DuckDB (all cores), written to OUT as CSV.

Scores: 1 + floor(5 * (rank() - 1) / n) with the ordering chosen so that better values rank
later; rank() gives ties the same (lowest) rank, as Lifecycle's rule does.
"""
import json
import sys
import time

import duckdb


def main(path: str, out: str) -> None:
    start = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"""
        COPY (
          WITH orders AS (
            SELECT customer_id, order_id, CAST(order_date AS DATE) AS day, amount
            FROM read_csv('{path}', header = true,
                          columns = {{'customer_id': 'VARCHAR', 'order_id': 'VARCHAR',
                                      'order_date': 'TIMESTAMP', 'amount': 'DOUBLE'}},
                          timestampformat = '%Y-%m-%d %H:%M:%S')
          ),
          analysis_day AS (SELECT max(day) AS d FROM orders),
          c AS (
            SELECT customer_id, min(day) AS first_order, max(day) AS last_order,
                   count(DISTINCT order_id) AS n_orders, count(DISTINCT day) AS n_purchase_days,
                   sum(amount) AS total_spend
            FROM orders GROUP BY customer_id
          )
          SELECT c.*, total_spend / n_orders AS avg_order_value,
                 (SELECT d FROM analysis_day) - last_order AS days_since_last_order,
                 1 + floor(5 * (rank() OVER (ORDER BY last_order ASC) - 1) / count(*) OVER ()) AS r_score,
                 1 + floor(5 * (rank() OVER (ORDER BY n_orders ASC) - 1) / count(*) OVER ()) AS f_score,
                 1 + floor(5 * (rank() OVER (ORDER BY round(total_spend, 2) ASC) - 1) / count(*) OVER ()) AS m_score
          FROM c
        ) TO '{out}' (HEADER, DELIMITER ',')
        """
    )
    n = con.execute(f"SELECT count(*) FROM read_csv('{out}')").fetchone()[0]
    print(json.dumps({"tool": "duckdb " + duckdb.__version__, "seconds": round(time.perf_counter() - start, 3), "customers": n}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
