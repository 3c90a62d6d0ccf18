# Group ops-cn: one copy of the group per slot (workspace blue / green).
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

module "slot" {
  source = "../_modules/slot"

  group         = var.group
  slot          = var.slot
  ami           = var.ami
  agent_count   = var.agent_count
  proxy_count   = var.proxy_count
  instance_type = var.instance_type
  slot_cidrs    = var.slot_cidrs
  edge          = "edge-cn"
}
