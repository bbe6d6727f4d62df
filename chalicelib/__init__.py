"""Switchboard: a serverless WebSocket backend on Chalice, API Gateway and DynamoDB."""
