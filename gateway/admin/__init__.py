"""Admin routes: API keys and the traffic log (admin key only)."""
