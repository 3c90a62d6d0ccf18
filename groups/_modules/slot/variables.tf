variable "group" {
  description = "Infrastructure group name (tags, ELB name)."
  type        = string
}

variable "slot" {
  description = "Slot this copy of the group is: blue or green."
  type        = string
  validation {
    condition     = contains(["blue", "green"], var.slot)
    error_message = "The slot must be \"blue\" or \"green\"."
  }
}

variable "ami" {
  description = "AMI every instance of the slot boots from."
  type        = string
  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.ami))
    error_message = "The ami must look like ami-0123456789abcdef0."
  }
}

variable "edge" {
  description = "Name of the region's edge (its VPC's tag rotator-edge) the slot peers with."
  type        = string
}

variable "slot_cidrs" {
  description = "VPC CIDR per slot: distinct so both slots coexist during a rotation."
  type        = map(string)
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

variable "elb_draining_seconds" {
  description = "Connection draining timeout of the slot's ELB."
  type        = number
  default     = 30
}
