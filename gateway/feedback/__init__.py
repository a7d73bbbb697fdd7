"""``POST /v1/feedback``: scores and corrections attached to logged completions."""
