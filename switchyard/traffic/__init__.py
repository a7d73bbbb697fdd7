"""The traffic-log tables (one row per request, feedback on it) and their queries.

They sit in the core because every layer reads them: the gateway writes, the tuner curates,
the monitor watches drift. None of those reaches the others to get at the log.
"""
