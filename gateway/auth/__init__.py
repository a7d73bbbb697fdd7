"""API keys: hashed at rest, shown once, each with an adapter allowlist."""
