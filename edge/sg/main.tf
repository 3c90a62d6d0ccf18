# Long-lived edge of region ap-southeast-1 (default workspace; not rotated).
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
  region = "ap-southeast-1"
  default_tags {
    tags = { managed-by = "rotator" }
  }
}

module "edge" {
  source    = "../_modules/region"
  zone_name = "rotator-demo.sg"
  groups    = ["ops-sg", "prd-sg-master", "prd-sg-slave"]
}

output "zone_id" {
  value = module.edge.zone_id
}

output "zone_name" {
  value = module.edge.zone_name
}

output "edge_elbs" {
  value = module.edge.edge_elbs
}
