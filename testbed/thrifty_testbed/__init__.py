"""A real local Kubernetes control plane and a kubelet stand-in for Thrifty's tests and demo."""
