"""Admin routes for the adapter registry: import, promote, rollback, canary, retire, delete."""
