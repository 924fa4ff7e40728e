"""swag: Video PreTraining (VPT) for NES games."""

__version__ = "0.1.0"
