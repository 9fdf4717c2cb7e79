"""Skeet's thin HTTP API (the Cloud Run service): auth → validate → broker → StateStore.

`python -m backend_stub` serves it; `backend_stub.app.create_app(settings)` builds it for tests.
"""
