"""Thrifty converters: PyTorch to verified, profiled, Triton-ready variants."""
