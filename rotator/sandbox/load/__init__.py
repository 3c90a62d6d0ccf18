"""`rotate sandbox load`: TTL-caching HTTP clients driven through the sandbox's DNS and
load balancers, on loopback only, and the reports of what they saw."""
