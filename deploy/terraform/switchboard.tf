# Switchboard's own resources, beside the chalice.tf.json that
# `chalice package --pkg-format terraform` writes (copy this directory's files
# into that directory). The names match .chalice/config.json and the stage's
# policy files. switchboard_override.tf.json (version constraints, the roles'
# policies, throttling, partial batch responses) and
# switchboard_observability.tf.json (alarms, dashboard, log groups) are written
# by `python -m deploy.generate`: do not edit them.

variable "throttling_rate_limit" {
  description = "Steady-state messages per second the WebSocket stage accepts."
  type        = number
  default     = 100
}

variable "throttling_burst_limit" {
  description = "Messages the WebSocket stage accepts in a burst before throttling."
  type        = number
  default     = 200
}

locals {
  switchboard_stage = data.null_data_source.chalice.outputs["stage"]
}

resource "aws_dynamodb_table" "connections" {
  name         = "switchboard-${local.switchboard_stage}-connections"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "PK"
  range_key    = "SK"

  attribute {
    name = "PK"
    type = "S"
  }
  attribute {
    name = "SK"
    type = "S"
  }
  attribute {
    name = "GSI1PK"
    type = "S"
  }
  attribute {
    name = "GSI1SK"
    type = "S"
  }
  attribute {
    name = "GSI2PK"
    type = "S"
  }
  attribute {
    name = "expiresAt"
    type = "N"
  }

  global_secondary_index {
    name               = "GSI1"
    hash_key           = "GSI1PK"
    range_key          = "GSI1SK"
    projection_type    = "INCLUDE"
    non_key_attributes = ["ttl", "endpoint"]
  }

  global_secondary_index {
    name               = "GSI2"
    hash_key           = "GSI2PK"
    range_key          = "expiresAt"
    projection_type    = "INCLUDE"
    non_key_attributes = ["ttl", "userId", "rooms"]
  }

  ttl {
    attribute_name = "ttl"
    enabled        = true
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = true
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_sqs_queue" "fanout_dlq" {
  name                      = "switchboard-${local.switchboard_stage}-fanout-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "fanout" {
  name                       = "switchboard-${local.switchboard_stage}-fanout"
  visibility_timeout_seconds = 360
  message_retention_seconds  = 3600
  sqs_managed_sse_enabled    = true
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.fanout_dlq.arn
    maxReceiveCount     = 5
  })
}

output "connections_table_name" {
  value = aws_dynamodb_table.connections.name
}

output "fanout_queue_url" {
  value = aws_sqs_queue.fanout.id
}
