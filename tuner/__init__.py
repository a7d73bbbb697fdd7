"""Continual tuning: curated traffic becomes dataset snapshots, which train new adapter versions."""
