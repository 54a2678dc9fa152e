"""The SPA client: fwknop-compatible options and rc files around the sans-IO core."""
