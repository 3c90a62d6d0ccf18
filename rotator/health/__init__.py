"""Health gates: verdicts on whether a slot's services are healthy enough to carry traffic."""
