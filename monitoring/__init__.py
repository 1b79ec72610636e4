"""Observability shared by the local stack and Kubernetes: Prometheus rules and alerts, the Grafana dashboard, a
scrape-config generator and a launcher for a local Prometheus server."""
