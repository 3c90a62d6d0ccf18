output "marathon_url" {
  value = module.slot.marathon_url
}

output "elb_name" {
  value = module.slot.elb_name
}

output "elb_dns_name" {
  value = module.slot.elb_dns_name
}

output "instance_ids" {
  value = module.slot.instance_ids
}

output "ami" {
  value = module.slot.ami
}

output "private_ips" {
  value = module.slot.private_ips
}
