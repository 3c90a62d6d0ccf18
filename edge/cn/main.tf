# Long-lived edge of region cn-north-1 (default workspace; not rotated): settings in edge.yaml.
# Backend bucket, key and region come from `terraform init -backend-config`.
terraform {
  required_version = ">= 1.10" # the S3 backend's use_lockfile
  backend "s3" {
    use_lockfile = true
  }
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

provider "aws" {
  region = "cn-north-1"
  default_tags {
    tags = { managed-by = "rotator" }
  }
}

locals {
  edge = yamldecode(file("${path.module}/edge.yaml"))
  # each group's part of the edge, as its group.yaml says (rotator reads the same file);
  # a group listed but not in this checkout has none
  groups = {
    for g in local.edge.groups : g => yamldecode(file("${path.module}/../../groups/${g}/group.yaml")).traffic.edge
    if fileexists("${path.module}/../../groups/${g}/group.yaml")
  }
}

module "edge" {
  source    = "../_modules/region"
  name      = local.edge.name
  zone_name = local.edge.zone
  vpc_cidr  = local.edge.vpc_cidr
  groups = {
    for g, e in local.groups : g => {
      load_balancer        = e.load_balancer
      port                 = e.port
      target_groups        = e.target_groups
      deregistration_delay = e.deregistration_delay
    }
  }
}

output "zone_id" {
  value = module.edge.zone_id
}

output "zone_name" {
  value = module.edge.zone_name
}

output "vpc_id" {
  value = module.edge.vpc_id
}

output "load_balancers" {
  value = module.edge.load_balancers
}

output "target_groups" {
  value = module.edge.target_groups
}
