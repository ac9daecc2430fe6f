"""Celery: the app, the tasks (thin: they take a job id), publishing, worker presence."""
