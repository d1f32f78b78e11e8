"""A real local Kubernetes cluster for Thrifty's tests and demo: control plane, real node, KWOK, images."""
