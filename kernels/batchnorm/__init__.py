"""Batch normalisation of (rows, channels) matrices: train (batch statistics), eval (running ones), backward."""
