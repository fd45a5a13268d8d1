"""Grafana dashboards for mindx-fault-exporter, generated from code (`python3 -m dashboards.generate`).

A development tool, not part of the exporter: `queries` holds every PromQL expression the panels
run, `style` the fault-level colours and value mappings, `generate` the dashboards themselves.
"""
