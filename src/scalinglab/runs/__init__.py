"""Run tables: the canonical schema, file readers and the SQLite run store."""
