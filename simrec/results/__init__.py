"""Result tables, their files, and gathering many runs."""

from simrec.results.io import Result

__all__ = ["Result"]
