"""Integration tests: they start real services (PostgreSQL, MLflow server, Ray cluster) on loopback."""
