"""The harness's own tests: the emulated API server, scheduler, kubelet and platform model (not the product)."""
