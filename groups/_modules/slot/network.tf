data "aws_availability_zones" "available" {
  state = "available"
}

locals {
  cidr = var.slot_cidrs[var.slot]
  azs  = slice(sort(data.aws_availability_zones.available.names), 0, 2)
  name = "${var.group}-${var.slot}"
  tags = { group = var.group, slot = var.slot }
}

resource "aws_vpc" "slot" {
  cidr_block = local.cidr
  tags       = merge(local.tags, { Name = local.name })
}

# Public subnets hold the slot's ELB and NAT gateway; the instances live in private
# subnets and reach out through the NAT (nothing addresses them from the Internet).
resource "aws_subnet" "public" {
  count             = 2
  vpc_id            = aws_vpc.slot.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(local.cidr, 8, count.index)
  tags              = merge(local.tags, { Name = "${local.name}-public-${local.azs[count.index]}", tier = "public" })
}

resource "aws_subnet" "private" {
  count             = 2
  vpc_id            = aws_vpc.slot.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(local.cidr, 8, 10 + count.index)
  tags              = merge(local.tags, { Name = "${local.name}-private-${local.azs[count.index]}", tier = "private" })
}

resource "aws_internet_gateway" "slot" {
  vpc_id = aws_vpc.slot.id
  tags   = merge(local.tags, { Name = local.name })
}

resource "aws_eip" "nat" {
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-nat" })
}

resource "aws_nat_gateway" "slot" {
  allocation_id = aws_eip.nat.id
  subnet_id     = aws_subnet.public[0].id
  tags          = merge(local.tags, { Name = local.name })
  depends_on    = [aws_internet_gateway.slot]
}

# Routes are resources of their own (no inline routes), so the route to the edge sits
# beside the default routes without either side fighting over the table.
resource "aws_route_table" "public" {
  vpc_id = aws_vpc.slot.id
  tags   = merge(local.tags, { Name = "${local.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.slot.id
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.slot.id
  tags   = merge(local.tags, { Name = "${local.name}-private" })
}

resource "aws_route" "private_internet" {
  route_table_id         = aws_route_table.private.id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.slot.id
}

# The region's edge: its load balancers reach the slot's proxies through a peering (same
# account and region: accepted at creation) and a route each way.
data "aws_vpc" "edge" {
  tags = { rotator-edge = var.edge }
}

data "aws_route_table" "edge" {
  vpc_id = data.aws_vpc.edge.id
  tags   = { rotator-edge = var.edge }
}

resource "aws_vpc_peering_connection" "edge" {
  vpc_id      = aws_vpc.slot.id
  peer_vpc_id = data.aws_vpc.edge.id
  auto_accept = true
  tags        = merge(local.tags, { Name = "${local.name}-${var.edge}" })
}

resource "aws_route" "to_edge" {
  for_each = {
    public  = aws_route_table.public.id
    private = aws_route_table.private.id
  }
  route_table_id            = each.value
  destination_cidr_block    = data.aws_vpc.edge.cidr_block
  vpc_peering_connection_id = aws_vpc_peering_connection.edge.id
}

resource "aws_route" "from_edge" {
  route_table_id            = data.aws_route_table.edge.id
  destination_cidr_block    = local.cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.edge.id
}

resource "aws_route_table_association" "public" {
  count          = 2
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table_association" "private" {
  count          = 2
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

resource "aws_security_group" "elb" {
  name        = "${local.name}-elb"
  description = "HTTP from anywhere to the slot ELB"
  vpc_id      = aws_vpc.slot.id
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
    cidr_blocks = [local.cidr]
  }
  tags = merge(local.tags, { Name = "${local.name}-elb" })
}

resource "aws_security_group" "instances" {
  name        = "${local.name}-instances"
  description = "Traffic inside the slot VPC, and HTTP from the edge to the proxies"
  vpc_id      = aws_vpc.slot.id
  ingress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = [local.cidr]
  }
  ingress {
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = [data.aws_vpc.edge.cidr_block]
  }
  egress {
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = ["0.0.0.0/0"]
  }
  tags = merge(local.tags, { Name = "${local.name}-instances" })
}
