"""Triton model repositories built from converted variants, and the CPU tritonserver to serve them.

Modules: `model_config` (ModelConfig build, render, parse and validate), `repository` (variant directories),
`distribution` (locate the tritonserver shipped in nvidia-pytriton and prepare its backends), `launcher`
(the `tritonserver` command of the `triton-cpu` image), `errors`. The test harness that runs a server and
the tiny test models live in the testbed (`thrifty_testbed.triton`, `thrifty_testbed.triton_models`).
"""
