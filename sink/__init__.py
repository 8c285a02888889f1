"""sink: stream records into correct, safe calls to Docker Hub's management API."""

__version__ = "0.1.0"
