"""tokenyard: an LLM traffic-engineering gateway."""

__version__ = "0.1.0"
