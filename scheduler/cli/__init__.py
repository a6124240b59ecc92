"""The ``greenlight`` command line (Typer): a thin shell over the REST API."""
