"""Solve jobs: stored rows (store), the backend interface (backend), the in-process runner."""
