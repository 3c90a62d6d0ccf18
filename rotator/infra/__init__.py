"""Infrastructure adapters: the groups' Terraform, one workspace per slot."""
