"""Triton model repositories built from converted variants, and a local tritonserver to serve them.

Modules: `config` (ModelConfig build, render, parse and validate), `repository` (variant directories),
`server` (the CPU tritonserver shipped in nvidia-pytriton), `testing` (a tiny real model), `errors`.
"""
