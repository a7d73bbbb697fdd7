"""The ops dashboard: one static page that reads the admin API with the admin key."""
