"""The embedded AWS emulator: moto server plus what moto lacks for this project (see __main__.py)."""
