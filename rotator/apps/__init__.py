"""Deploying a group's apps (Marathon)."""
