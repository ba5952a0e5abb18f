"""breedlab: breed small specialist language models from a frozen parent."""

__version__ = "0.1.0"
