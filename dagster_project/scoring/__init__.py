"""Fit scoring: config, points, anti-ICP flags, tiers, routes, explanations (no Dagster)."""
