"""Baseline: the end-to-end CLV pipeline of Python `lifetimes` 0.11.3, for timing against
`lifecycle predict --model bgnbd` on the same CSV.

    python clv_lifetimes.py ORDERS.csv [--freq W|D] [--collapse] [--out PREDICTIONS.csv]
    python clv_lifetimes.py --cdnow [--runs 5]

ORDERS.csv is a file of `lifecycle generate` (header `customer_id,order_id,order_date,amount`,
order_date `YYYY-MM-DD HH:MM:SS`, amount with 2 decimals). The steps, each timed with
time.perf_counter:

  read_csv         pandas.read_csv (default C engine, as the lifetimes docs do)
  summary          lifetimes.utils.summary_data_from_transaction_data(..., monetary_value_col=
                   "amount", observation_period_end=<last order day in the file>, freq="W"),
                   i.e. frequency / recency / T in weeks, as Lifecycle's --time-unit week
  fit_bgnbd        BetaGeoFitter(penalizer_coef=0).fit(frequency, recency, T)
  fit_gamma_gamma  GammaGammaFitter(penalizer_coef=0).fit on the repeat buyers
                   (frequency > 0 and monetary_value > 0)
  clv              ggf.customer_lifetime_value(bgf, ..., time=12 months, discount_rate=0.01
                   monthly, freq="W") for every customer
  write            (only with --out) per-customer predictions to CSV

How the two tools measure time (see bench/clv_run.sh):
- `--freq W` (default, the standard lifetimes recipe): lifetimes maps every order to its calendar
  week (pandas period "W" = W-SUN, Monday to Sunday) before anything else, so frequency counts
  repeat *weeks* with a purchase (two purchase days in one week are one purchase), recency and T
  are whole numbers of calendar-week boundaries crossed, and the observation end is the Monday of
  the week of the last order day. Lifecycle counts repeat purchase *days* and measures recency
  and T as days / 7, a real number.
- `--freq D`: the same summary call with freq="D", freq_multiplier=7: purchase days and days / 7,
  which is exactly Lifecycle's definition (use it to cross-check parameters and predictions).

`--collapse` fits the BG/NBD on the distinct (frequency, recency, T) rows with their counts as
`weights` (lifetimes supports it but the usual recipe does not use it); the default fits one row
per customer.

`--cdnow` fits the BG/NBD on lifetimes' own CDNOW summary (`load_cdnow_summary`, 2,357
customers, weeks, calibration end 1997-09-30; byte-identical to data/cdnow_customers_summary.csv)
`--runs` times and prints the fit times and their median.

Prints one JSON object on stdout: step timings in seconds, total (the steps), import time,
seconds of the whole process so far, fitted parameters (BG/NBD r, alpha, a, b; Gamma-Gamma p, q,
v), customers, distinct (frequency, recency, T) rows and the collapse ratio customers / distinct.
"""
import time

START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import lifetimes  # noqa: E402
from lifetimes import BetaGeoFitter, GammaGammaFitter  # noqa: E402
from lifetimes.utils import summary_data_from_transaction_data  # noqa: E402

IMPORTED = time.perf_counter()

CUSTOMER, DATE, AMOUNT = "customer_id", "order_date", "amount"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
HORIZON_WEEKS = 52
CLV_MONTHS = 12
MONTHLY_DISCOUNT = 0.01


class Steps:
    def __init__(self):
        self.seconds = {}
        self._t = time.perf_counter()

    def done(self, name):
        now = time.perf_counter()
        self.seconds[name] = now - self._t
        self._t = now


def params(model, names):
    return {n: float(model.params_[n]) for n in names}


def bgnbd_log_likelihood(bgf, f, r, t):
    """The log-likelihood at the fitted parameters on the unscaled data (lifetimes keeps only
    the mean on its internally rescaled times, which differs by a constant)."""
    log_params = np.log(bgf.params_[["r", "alpha", "a", "b"]].to_numpy(dtype=float))
    f = np.asarray(f, dtype=float)
    w = np.ones_like(f)
    return -float(BetaGeoFitter._negative_log_likelihood(
        log_params, f, np.asarray(r, dtype=float), np.asarray(t, dtype=float), w, 0.0)) * len(f)


def pipeline(args):
    steps = Steps()

    # (a) read
    df = pd.read_csv(args.orders)
    steps.done("read_csv")

    # (b) summary; observation end = the last order day in the file (Lifecycle's as-of). The
    # dates are ISO text, so the string maximum is the latest timestamp.
    end = pd.Timestamp(df[DATE].max()).normalize()
    if args.freq == "W":
        summary = summary_data_from_transaction_data(
            df, CUSTOMER, DATE, monetary_value_col=AMOUNT, datetime_format=DATE_FORMAT,
            observation_period_end=end, freq="W",
        )
    else:
        summary = summary_data_from_transaction_data(
            df, CUSTOMER, DATE, monetary_value_col=AMOUNT, datetime_format=DATE_FORMAT,
            observation_period_end=end, freq="D", freq_multiplier=7,
        )
    steps.done("summary")
    rows = len(df)
    del df

    f, r, t = summary["frequency"], summary["recency"], summary["T"]

    def distinct_rows():
        return summary.groupby(["frequency", "recency", "T"], sort=False).size()

    # (c) BG/NBD
    bgf = BetaGeoFitter(penalizer_coef=0.0)
    if args.collapse:
        d = distinct_rows().reset_index(name="weights")
        bgf.fit(d["frequency"], d["recency"], d["T"], weights=d["weights"])
    else:
        bgf.fit(f, r, t)
    steps.done("fit_bgnbd")

    # (d) Gamma-Gamma on the repeat buyers
    repeat = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0)
    ggf.fit(repeat["frequency"], repeat["monetary_value"])
    steps.done("fit_gamma_gamma")

    # (e) CLV of every customer (lifetimes' customer_lifetime_value uses the Gamma-Gamma
    # conditional expected value for everyone, repeat buyer or not)
    clv = ggf.customer_lifetime_value(
        bgf, f, r, t, summary["monetary_value"],
        time=CLV_MONTHS, discount_rate=MONTHLY_DISCOUNT, freq="W",
    )
    steps.done("clv")

    if args.out:
        out = pd.DataFrame({
            "frequency": f,
            "recency": r,
            "T": t,
            "expected_purchases": bgf.conditional_expected_number_of_purchases_up_to_time(
                HORIZON_WEEKS, f, r, t),
            "p_alive": bgf.conditional_probability_alive(f, r, t),
            "clv": clv,
        }, index=summary.index)
        out.index.name = CUSTOMER
        out.to_csv(args.out, float_format="%.6f")
        steps.done("write")

    # Outside the timed steps (but inside the process's wall time): the figures for the report.
    t0 = time.perf_counter()
    n = len(summary)
    n_distinct = len(distinct_rows())
    log_likelihood = bgnbd_log_likelihood(bgf, f, r, t)
    extras = time.perf_counter() - t0
    return {
        "tool": "lifetimes",
        "lifetimes": lifetimes.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "input": args.orders,
        "rows": rows,
        "freq": args.freq,
        "collapse": args.collapse,
        "observation_period_end": str(end.date()),
        "customers": n,
        "repeat_buyers": int(len(repeat)),
        "distinct_rows": n_distinct,
        "collapse_ratio": n / n_distinct,
        "params": {
            "bgnbd": params(bgf, ["r", "alpha", "a", "b"]),
            "gamma_gamma": params(ggf, ["p", "q", "v"]),
        },
        "log_likelihood_bgnbd": log_likelihood,
        "total_clv": float(clv.sum()),
        "steps": steps.seconds,
        "total": sum(steps.seconds.values()),
        "import": IMPORTED - START,
        "untimed_report_extras": extras,
    }


def cdnow(args):
    from lifetimes.datasets import load_cdnow_summary

    data = load_cdnow_summary(index_col=[0])
    times = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        bgf = BetaGeoFitter(penalizer_coef=0.0).fit(data["frequency"], data["recency"], data["T"])
        times.append(time.perf_counter() - t0)
    return {
        "tool": "lifetimes",
        "lifetimes": lifetimes.__version__,
        "input": "lifetimes.datasets.load_cdnow_summary",
        "customers": len(data),
        "params": {"bgnbd": params(bgf, ["r", "alpha", "a", "b"])},
        "log_likelihood_bgnbd": bgnbd_log_likelihood(
            bgf, data["frequency"], data["recency"], data["T"]),
        "fit_seconds": times,
        "fit_median": statistics.median(times),
        "import": IMPORTED - START,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("orders", nargs="?", help="orders CSV of `lifecycle generate`")
    ap.add_argument("--freq", choices=["W", "D"], default="W",
                    help="W: lifetimes' calendar weeks (default); D: purchase days, days / 7")
    ap.add_argument("--collapse", action="store_true",
                    help="fit the BG/NBD on distinct (frequency, recency, T) rows with weights")
    ap.add_argument("--out", help="write per-customer predictions to this CSV")
    ap.add_argument("--cdnow", action="store_true",
                    help="time the BG/NBD fit on lifetimes' CDNOW summary instead")
    ap.add_argument("--runs", type=int, default=5, help="fits to time with --cdnow")
    args = ap.parse_args()
    if not args.cdnow and not args.orders:
        ap.error("an orders file or --cdnow is needed")
    # pandas 1.5 / numpy warnings from lifetimes' internals would only clutter stderr.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    result = cdnow(args) if args.cdnow else pipeline(args)
    result["process"] = time.perf_counter() - START
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
