# What outlives the slots of a region's groups: the public hosted zone rotator writes
# weighted records into, and the edge: a VPC with one internet-facing Application Load
# Balancer per group (or per master/slave pair), whose listener splits traffic between
# one target group per slot by weight. Each slot peers its VPC with the edge VPC and
# rotator registers the slot's proxies (by private IP) in the slot's target group.
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "name" {
  description = "The edge's name; the slots of the region find its VPC by the tag rotator-edge."
  type        = string
}

variable "zone_name" {
  type = string
}

variable "vpc_cidr" {
  description = "The edge VPC's CIDR: no slot CIDR of the region may overlap it (rotate validate checks)."
  type        = string
}

variable "groups" {
  description = "Groups of the region, as their group.yaml describes their edge (traffic.edge)."
  type = map(object({
    load_balancer        = string
    port                 = number
    target_groups        = map(string)
    deregistration_delay = number
  }))
}

data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  azs = slice(sort(data.aws_availability_zones.available.names), 0, 2)
  # one target group per group and slot
  target_groups = merge([
    for g, e in var.groups : {
      for slot, tg in e.target_groups : "${g}/${slot}" => {
        group = g, slot = slot, name = tg, lb = e.load_balancer, port = e.port
        delay = e.deregistration_delay
      }
    }
  ]...)
  # a load balancer per distinct name: a pair's slave names its master's
  balancers = { for g, e in var.groups : e.load_balancer => e.port... }
}

resource "aws_route53_zone" "public" {
  name    = var.zone_name
  comment = "Public names of the groups, weighted per slot by rotator"
}

resource "aws_vpc" "edge" {
  cidr_block = var.vpc_cidr
  tags       = { Name = var.name, rotator-edge = var.name }
}

resource "aws_subnet" "public" {
  count             = 2
  vpc_id            = aws_vpc.edge.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)
  tags              = { Name = "${var.name}-${local.azs[count.index]}" }
}

resource "aws_internet_gateway" "edge" {
  vpc_id = aws_vpc.edge.id
  tags   = { Name = var.name }
}

# No inline routes: each slot adds (and removes) its own route to its CIDR.
resource "aws_route_table" "edge" {
  vpc_id = aws_vpc.edge.id
  tags   = { Name = var.name, rotator-edge = var.name }
}

resource "aws_route" "internet" {
  route_table_id         = aws_route_table.edge.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.edge.id
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.edge.id
}

resource "aws_security_group" "edge" {
  name        = "${var.name}-alb"
  description = "HTTP from anywhere to the edge load balancers, and to the slots' proxies"
  vpc_id      = aws_vpc.edge.id
  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    from_port   = 0
    to_port     = 65535
    protocol    = "tcp"
    cidr_blocks = ["10.0.0.0/8"]
  }
  tags = { Name = "${var.name}-alb" }
}

resource "aws_lb" "edge" {
  for_each           = local.balancers
  name               = each.key
  load_balancer_type = "application"
  internal           = false
  subnets            = aws_subnet.public[*].id
  security_groups    = [aws_security_group.edge.id]
  tags               = { rotator-edge = var.name }
  depends_on         = [aws_internet_gateway.edge]
}

resource "aws_lb_target_group" "slot" {
  for_each    = local.target_groups
  name        = each.value.name
  target_type = "ip" # the proxies live in the slots' peered VPCs
  port        = each.value.port
  protocol    = "HTTP"
  vpc_id      = aws_vpc.edge.id
  # How long a deregistered proxy keeps its in-flight requests (group.yaml).
  deregistration_delay = each.value.delay
  health_check {
    path                = "/health"
    port                = "traffic-port"
    protocol            = "HTTP"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 2
    matcher             = "200"
  }
  tags = { group = each.value.group, slot = each.value.slot }
}

resource "aws_lb_listener" "edge" {
  for_each          = local.balancers
  load_balancer_arn = aws_lb.edge[each.key].arn
  port              = each.value[0]
  protocol          = "HTTP"

  default_action {
    type = "forward"
    forward {
      dynamic "target_group" {
        for_each = { for k, tg in local.target_groups : k => tg if tg.lb == each.key }
        content {
          arn = aws_lb_target_group.slot[target_group.key].arn
          # nothing serves before a group's first build: rotator owns the weights from then
          weight = 0
        }
      }
    }
  }

  # rotator sets the weights (one ModifyListener per step), as it owns the weighted records
  lifecycle {
    ignore_changes = [default_action]
  }
}

output "zone_id" {
  value = aws_route53_zone.public.zone_id
}

output "zone_name" {
  value = aws_route53_zone.public.name
}

output "vpc_id" {
  value = aws_vpc.edge.id
}

output "load_balancers" {
  description = "name -> { dns_name, zone_id, arn } of each edge load balancer."
  value = {
    for name, lb in aws_lb.edge : name => {
      dns_name = lb.dns_name
      zone_id  = lb.zone_id
      arn      = lb.arn
    }
  }
}

output "target_groups" {
  description = "group/slot -> target group name."
  value       = { for k, tg in aws_lb_target_group.slot : k => tg.name }
}
