"""The command-line interface: thin Typer commands that render data the core returns."""
