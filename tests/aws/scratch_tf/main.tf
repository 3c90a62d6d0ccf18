terraform {
  required_providers {
    aws = { source = "hashicorp/aws", version = "5.100.0" }
  }
}

provider "aws" {
  region = "cn-north-1"
}

variable "ami" {
  type = string
}

# Keeps names apart when the same emulator serves several runs.
variable "suffix" {
  type = string
}

resource "aws_vpc" "main" {
  cidr_block           = "10.20.0.0/16"
  enable_dns_hostnames = true
  tags                 = { Name = "scratch-${var.suffix}" }
}

resource "aws_subnet" "a" {
  vpc_id            = aws_vpc.main.id
  cidr_block        = "10.20.1.0/24"
  availability_zone = "cn-north-1a"
}

resource "aws_internet_gateway" "gw" {
  vpc_id = aws_vpc.main.id
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.main.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.gw.id
  }
}

resource "aws_route_table_association" "a" {
  subnet_id      = aws_subnet.a.id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "web" {
  name   = "web-${var.suffix}"
  vpc_id = aws_vpc.main.id
  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_instance" "agent" {
  count                  = 2
  ami                    = var.ami
  instance_type          = "t3.micro"
  subnet_id              = aws_subnet.a.id
  vpc_security_group_ids = [aws_security_group.web.id]
  tags                   = { role = "agent", group = var.suffix, slot = "blue" }
}

resource "aws_elb" "web" {
  name            = "web-${var.suffix}"
  subnets         = [aws_subnet.a.id]
  security_groups = [aws_security_group.web.id]
  instances       = aws_instance.agent[*].id

  listener {
    instance_port     = 8080
    instance_protocol = "http"
    lb_port           = 80
    lb_protocol       = "http"
  }

  health_check {
    healthy_threshold   = 2
    unhealthy_threshold = 2
    timeout             = 3
    target              = "HTTP:8080/health"
    interval            = 10
  }

  connection_draining         = true
  connection_draining_timeout = 30
  cross_zone_load_balancing   = true
}

# No health_check block: AWS fills a default one.
resource "aws_elb" "bare" {
  name    = "bare-${var.suffix}"
  subnets = [aws_subnet.a.id]

  listener {
    instance_port     = 9000
    instance_protocol = "tcp"
    lb_port           = 9000
    lb_protocol       = "tcp"
  }
}

resource "aws_route53_zone" "main" {
  name = "${var.suffix}.example.com"
}

resource "aws_route53_record" "api_blue" {
  zone_id        = aws_route53_zone.main.zone_id
  name           = "api.${var.suffix}.example.com"
  type           = "CNAME"
  ttl            = 60
  set_identifier = "blue"
  records        = [aws_elb.web.dns_name]
  weighted_routing_policy {
    weight = 100
  }
}

resource "aws_route53_record" "www" {
  zone_id = aws_route53_zone.main.zone_id
  name    = "www.${var.suffix}.example.com"
  type    = "A"
  alias {
    name                   = aws_elb.web.dns_name
    zone_id                = aws_elb.web.zone_id
    evaluate_target_health = false
  }
}

output "elb_dns" {
  value = aws_elb.web.dns_name
}

output "bare_elb" {
  value = aws_elb.bare.name
}

output "bare_health_target" {
  value = aws_elb.bare.health_check[0].target
}

output "elb_zone_id" {
  value = aws_elb.web.zone_id
}
