"""``kafka-micro status-page``: the read-only status page that replaces the original's Kafka UI.

``kafka_view`` reads Kafka's Admin API, ``prometheus`` reads Prometheus' HTTP API, ``page`` and
``svg`` render them as one HTML document, ``server`` serves it, ``auth`` checks basic auth.
"""
