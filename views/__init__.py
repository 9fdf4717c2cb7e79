"""Screens and panels: each builds Flet controls from `AppState` and emits intents; no I/O here."""
