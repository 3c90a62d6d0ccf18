# What outlives the slots of a region's groups: the public hosted zone the rotator
# writes weighted records into, and one "edge" classic ELB per group into which the
# rotator registers the live slot's proxies.
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "zone_name" {
  type = string
}

variable "groups" {
  description = "Groups of the region; each gets an ELB named <group>-edge."
  type        = set(string)
}

data "aws_availability_zones" "available" {
  state = "available"
}

resource "aws_route53_zone" "public" {
  name    = var.zone_name
  comment = "Public names of the groups, weighted per slot by rotator"
}

resource "aws_elb" "edge" {
  for_each           = var.groups
  name               = "${each.key}-edge"
  availability_zones = slice(sort(data.aws_availability_zones.available.names), 0, 2)

  listener {
    lb_port           = 80
    lb_protocol       = "http"
    instance_port     = 80
    instance_protocol = "http"
  }

  health_check {
    target              = "HTTP:80/health"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
  }

  cross_zone_load_balancing = true
  connection_draining       = true
  # Short-lived HTTP requests: 10 s lets them finish; raise it for long-lived connections
  # (rotator waits out whatever is set here before destroying a slot).
  connection_draining_timeout = 10
  tags                        = { group = each.key, role = "edge" }

  # The rotator registers and deregisters the live slot's instances.
  lifecycle {
    ignore_changes = [instances]
  }
}

output "zone_id" {
  value = aws_route53_zone.public.zone_id
}

output "zone_name" {
  value = aws_route53_zone.public.name
}

output "edge_elbs" {
  description = "group -> { name, dns_name, zone_id } of its edge ELB."
  value = {
    for g, elb in aws_elb.edge : g => {
      name     = elb.name
      dns_name = elb.dns_name
      zone_id  = elb.zone_id
    }
  }
}
