variable "group" {
  type    = string
  default = "ops-cn"
}

variable "slot" {
  type = string
}

variable "ami" {
  type = string
}

variable "agent_count" {
  type    = number
  default = 2
}

variable "proxy_count" {
  type    = number
  default = 2
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

variable "slot_cidrs" {
  description = "VPC CIDR per slot (group.yaml terraform.vars: rotate validate checks them)."
  type        = map(string)
}
