"""Time lifetimes' ParetoNBDFitter on a generated orders file (weekly summary as in
bench/clv_lifetimes.py). Prints one JSON object. Used by hand (see bench/README in the
project README); lifetimes can take longer than an hour here, so run it under `timeout`."""
import json
import sys
import time

import pandas as pd
from lifetimes import ParetoNBDFitter
from lifetimes.utils import summary_data_from_transaction_data

path = sys.argv[1]
t0 = time.perf_counter()
df = pd.read_csv(path)
customer = next(c for c in df.columns if "customer" in c.lower())
date = next(c for c in df.columns if "date" in c.lower() or "time" in c.lower())
df[date] = pd.to_datetime(df[date])
end = df[date].max().normalize()
summary = summary_data_from_transaction_data(df, customer, date, observation_period_end=end, freq="W")
t1 = time.perf_counter()
fitter = ParetoNBDFitter(penalizer_coef=0.0)
fitter.fit(summary["frequency"], summary["recency"], summary["T"])
t2 = time.perf_counter()
print(json.dumps({
    "customers": len(summary),
    "summary_seconds": t1 - t0,
    "fit_seconds": t2 - t1,
    "params": {k: float(v) for k, v in fitter.params_.items()},
}))
