"""flepimop-sync: the file synchronization layer of flepiMoP."""

__version__ = "0.1.0"
