"""The floor: bare Django JSON views doing the service's SQL with no framework layers on top.

Used only by the benchmark, through its own settings (``bench.floor.settings``) and URLs; the
service's settings and URLs never include it.
"""
