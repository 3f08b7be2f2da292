"""The background worker: claims jobs from the SQLite queue and runs them with list_core."""
