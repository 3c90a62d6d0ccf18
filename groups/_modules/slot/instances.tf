locals {
  # One entry per instance, spread over both private subnets; keys stay stable when a count changes.
  roles = {
    mesos-agent = var.agent_count
    proxy       = var.proxy_count
    marathon    = 1
  }
  instances = merge([
    for role, n in local.roles : {
      for i in range(n) : "${role}-${i}" => { role = role, index = i }
    }
  ]...)
}

resource "aws_instance" "node" {
  for_each               = local.instances
  ami                    = var.ami
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.private[each.value.index % 2].id
  vpc_security_group_ids = [aws_security_group.instances.id]
  tags = merge(local.tags, {
    Name = "${local.name}-${each.key}"
    role = each.value.role
  })
}

resource "aws_elb" "slot" {
  name            = local.name
  subnets         = aws_subnet.public[*].id
  security_groups = [aws_security_group.elb.id]
  instances       = [for k, v in local.instances : aws_instance.node[k].id if v.role == "proxy"]

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

  cross_zone_load_balancing   = true
  connection_draining         = true
  connection_draining_timeout = var.elb_draining_seconds
  tags                        = merge(local.tags, { Name = local.name })

  depends_on = [aws_internet_gateway.slot]
}
