"""kizuna: batch revenue analytics and campaigns for existing customers."""

__version__ = "0.1.0"
