output "marathon_url" {
  value = "http://${aws_instance.node["marathon-0"].private_ip}:8080"
}

output "elb_name" {
  value = aws_elb.slot.name
}

output "elb_dns_name" {
  value = aws_elb.slot.dns_name
}

output "instance_ids" {
  description = "Instance ids by role."
  value = {
    for role in keys(local.roles) : role => [
      for k, v in local.instances : aws_instance.node[k].id if v.role == role
    ]
  }
}

output "ami" {
  value = var.ami
}

output "private_ips" {
  description = "Private IPs by role (the edge registers the proxies' by IP)."
  value = {
    for role in keys(local.roles) : role => [
      for k, v in local.instances : aws_instance.node[k].private_ip if v.role == role
    ]
  }
}
