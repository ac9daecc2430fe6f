"""The API's duties beyond one request: submit checks, maintenance, health, metrics, logs."""
