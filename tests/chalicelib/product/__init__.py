"""Tests of your product's modules (``chalicelib/product/``), shipped empty."""
