"""Kubernetes manifests of the Sui QA stack (kustomize) and their generator (`python -m k8s.generate`)."""
