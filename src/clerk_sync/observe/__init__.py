"""What a running server tells about itself: its Prometheus metrics (:mod:`.metrics`) and the
live feed of the dashboard (:mod:`.feed`). Import them from their modules: each loads only what
it needs (``prometheus_client`` for the metrics).

The web layer serves both (``GET /metrics``, ``/admin/live``); nothing here knows about HTTP.
"""
