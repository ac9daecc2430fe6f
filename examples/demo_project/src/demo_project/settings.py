"""Project settings: Kedro defaults, stated explicitly.

The default ``BaseSessionStore`` keeps session data in memory, so a run
writes nothing into the project directory.
"""

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
