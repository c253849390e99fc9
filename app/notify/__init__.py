"""Telling others that a plan changed: webhook subscriptions, the outbox and its delivery loop."""
