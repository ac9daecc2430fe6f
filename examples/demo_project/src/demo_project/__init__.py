"""Demo Kedro project for the job-orchestration gateway."""

__version__ = "0.1.0"
