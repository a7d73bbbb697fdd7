"""Drift monitoring over HTTP: run checks, read their history, serve their reports."""
