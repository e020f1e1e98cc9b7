"""Drives Lifecycle with Segment's analytics-python, unchanged: an anonymous
page view, identify (merging the visitor), two orders, a batch flush."""
import os
import sys
from datetime import datetime, timezone

import segment.analytics as analytics

analytics.write_key = os.environ["WRITE_KEY"]
analytics.host = os.environ["HOST"]
analytics.gzip = True
errors = []
analytics.on_error = lambda error, batch: errors.append(error)

at = lambda d: datetime(2023, 12, d, 10, 0, tzinfo=timezone.utc)
analytics.page(anonymous_id="anon-py", name="Home", timestamp=at(1))
analytics.identify("py-1", {"email": "Py@Example.com", "name": "Py"}, anonymous_id="anon-py", timestamp=at(2))
analytics.track("py-1", "Order Completed", {
    "order_id": "py-o1", "total": 40.0, "currency": "USD",
    "products": [{"product_id": "p1", "sku": "S1", "category": "Books", "price": 40.0, "quantity": 1}],
}, timestamp=at(5))
analytics.track("py-1", "Order Completed", {"order_id": "py-o2", "revenue": 60.0}, timestamp=at(20))
analytics.flush()
analytics.shutdown()
if errors:
    print("errors:", errors, file=sys.stderr)
    sys.exit(1)
print("sent")
