"""Importers: files other tools write (W&B CSV exports, TensorBoard event files) → the canonical run table."""
