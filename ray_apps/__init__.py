"""ReaLM on Ray: a user simulator trained on real conversations, synthetic chat data, assistants."""

__version__ = "0.1.0"
