"""Live push: the WebSocket protocol, per-player streams, fan-out across instances."""
