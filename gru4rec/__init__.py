"""GRU4Rec: session-based next-item recommendation with a GRU, in PyTorch."""

__version__ = "0.1.0"
