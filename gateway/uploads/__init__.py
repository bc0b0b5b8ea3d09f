"""Resumable package uploads over tus 1.0.0 at ``/api/v1/uploads`` (docs/uploads.md), and a client for them."""
