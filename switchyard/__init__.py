"""Cross-cutting home of Switchyard: settings, database setup, the CLI and the demo model."""

__version__ = "0.1.0"
