"""The API's duties beyond one request: submit, maintenance, admission, health, metrics, logs."""
