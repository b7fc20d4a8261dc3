"""Helpers that start and stop a single-node SLURM cluster for the cluster tests."""
