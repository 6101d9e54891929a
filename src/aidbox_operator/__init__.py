"""Kubernetes operator for highly available Aidbox clusters."""
