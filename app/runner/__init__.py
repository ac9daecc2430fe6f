"""The runner: the only package that starts `kedro run` or talks to its process.

`run` drives one attempt; `cold` and `warm` start it (behind `groups.RunProcess`);
`command` builds its argv, run-config and environment; `output` reads Kedro's
log lines; `inspector` discovers pipelines. `scripts/` holds the two
standard-library-only programs (the process guard, the warm server) that run in
other interpreters.
"""
