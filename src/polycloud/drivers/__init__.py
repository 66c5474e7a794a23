"""Drivers turn desired replicas into running ones on a cluster (one folder per driver type)."""
