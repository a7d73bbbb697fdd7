"""The traffic log: one row per request, spooled on the request path and drained in batches."""
