"""dealroom: a negotiation engine and deal room for B2B marketplaces."""

__version__ = "0.1.0"
