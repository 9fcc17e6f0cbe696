"""Serving a run to other machines: the MJPEG preview server with its page and /stats, and the
Prometheus text of /metrics."""
