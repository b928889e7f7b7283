"""Optimizer updates of flat parameter buffers: SGD, momentum and Adam."""
