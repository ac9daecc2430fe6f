"""Peers the gateway is measured beside: a naive gateway and a bare FastAPI ceiling."""
