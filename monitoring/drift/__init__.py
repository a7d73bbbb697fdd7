"""Drift monitoring: each adapter's recent traffic against its reference, with Evidently.

Kept free of imports: the result tables (``models``) and queries (``crud``, with the metric hook
:func:`~monitoring.drift.crud.drift_share_by_adapter`) load without pandas or Evidently, which
only ``monitor`` (the checks themselves) needs.
"""
