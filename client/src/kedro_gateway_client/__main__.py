"""`python -m kedro_gateway_client` runs the command line."""

from kedro_gateway_client.cli import main

main()
